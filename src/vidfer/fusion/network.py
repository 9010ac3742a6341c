"""Feature-level fusion (Kahou et al. 2015, §5.1): one hidden layer per model, a joint layer.

Each run contributes a video-level feature vector (:func:`run_video_features`): a 3D model its
backbone features averaged over the video; a frame pipeline the aggregate its SVM classifies,
its recurrent model's read-out (Kahou: the RNN's last hidden state) or its mean per-frame
probabilities. The network standardises each input with training statistics, passes it
through its own hidden layer (ReLU; Kahou: 100 units for the aggregated CNN features, 10 for
the audio, 50 for the RNN), concatenates them into a joint hidden layer (70) and a softmax, and
is trained with SGD and momentum (Kahou's stabilised setting: lr 0.001, momentum 0.9), gradient
clipping (10) and optional dropout, stopping early on the validation loss. Kahou's additional
regulariser that makes the modality layers share hidden units is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidfer.data.prepared import load_dataset
from vidfer.device import seed_everything
from vidfer.io.run_folder import RunDir
from vidfer.pipelines import pipeline_for
from vidfer.training.sequences import (
    LabelledSequence,
    SequenceTraining,
    fit_sequences,
)


@dataclass(frozen=True)
class RunFeatures:
    """A run's video-level features and its dataset's splits and labels, by video id."""

    features: dict[str, np.ndarray]
    splits: dict[str, str]
    labels: dict[str, int]


def run_video_features(run_folder: str | Path, device: torch.device) -> RunFeatures:
    """One feature vector per usable video of the run's dataset (from the cached features)."""
    run = RunDir(run_folder)
    config = run.config()
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    features = pipeline_for(config).video_features(run, data, device)
    return RunFeatures(
        features,
        {item.row.video_id: item.row.split for item in data.items},
        {item.row.video_id: item.row.label_index for item in data.items},
    )


class FeatureFusionNet(nn.Module):
    """Per-model hidden layers, a joint hidden layer and a classifier.

    Called as ``net(x, mask)`` on the models' features side by side ``(B, 1, sum D)`` (one
    "step", so that the sequence training loop drives it; the mask is unused).

    Args:
        dims: Feature size of each model.
        hidden: Hidden units of each model's layer.
        joint: Units of the joint layer.
        num_classes: K.
        dropout: Dropout after every hidden layer.
    """

    mean: torch.Tensor  # (sum D,)
    std: torch.Tensor  # (sum D,)

    def __init__(
        self,
        dims: Sequence[int],
        hidden: Sequence[int],
        joint: int,
        num_classes: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dims = list(dims)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout))
            for d, h in zip(dims, hidden, strict=True)
        )
        self.joint = nn.Sequential(nn.Linear(sum(hidden), joint), nn.ReLU(), nn.Dropout(dropout))
        self.classifier = nn.Linear(joint, num_classes)
        self.register_buffer("mean", torch.zeros(sum(dims)))
        self.register_buffer("std", torch.ones(sum(dims)))

    def fit_scaling(self, rows: np.ndarray) -> None:
        """Standardise inputs with these training rows ``(N, sum D)``."""
        self.mean.copy_(torch.from_numpy(rows.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.maximum(rows.std(axis=0), 1e-6)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, K)`` of features ``(B, 1, sum D)``."""
        z = ((x[:, 0] - self.mean) / self.std).split(self.dims, dim=1)  # M x (B, D_m)
        hidden = torch.cat([branch(part) for branch, part in zip(self.branches, z, strict=True)], 1)
        return self.classifier(self.joint(hidden))


@dataclass(frozen=True)
class NetworkSettings:
    """Training of the fusion network.

    Attributes:
        hidden: Units per model (None: 100 each).
        joint: Joint layer units (Kahou: 70).
        dropout: Dropout after hidden layers.
        lr: SGD learning rate (Kahou, stabilised: 0.001).
        momentum: SGD momentum (0.9).
        clip_grad: Gradient norm clipping (10).
        epochs: Maximum epochs.
        patience: Early stopping on the validation loss.
        batch_size: Videos per step.
        seed: Seed of the initialisation and order.
    """

    hidden: tuple[int, ...] | None = None
    joint: int = 70
    dropout: float = 0.0
    lr: float = 0.001
    momentum: float = 0.9
    clip_grad: float = 10.0
    epochs: int = 300
    patience: int = 30
    batch_size: int = 16
    seed: int = 0


def train_fusion_network(
    dims: Sequence[int],
    train: list[LabelledSequence],
    monitor: list[LabelledSequence],
    num_classes: int,
    settings: NetworkSettings,
    folder: Path,
    device: torch.device,
) -> FeatureFusionNet:
    """Train the network on the concatenated features (each sequence holds one step)."""
    seed_everything(settings.seed, deterministic=True)
    hidden = settings.hidden or tuple(100 for _ in dims)
    net = FeatureFusionNet(dims, hidden, settings.joint, num_classes, settings.dropout)
    net.fit_scaling(np.concatenate([s.features for s in train]))
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=settings.lr, momentum=settings.momentum)
    training = SequenceTraining(
        epochs=settings.epochs,
        patience=settings.patience,
        batch_size=settings.batch_size,
        clip_grad=settings.clip_grad,
        seed=settings.seed,
    )
    fit_sequences(net, optimizer, train, monitor, training, folder, {"dims": list(dims)}, device)
    return net
