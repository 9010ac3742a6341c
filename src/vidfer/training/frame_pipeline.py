"""Frame-feature pipelines (Kahou et al., Xu et al.): ``vidfer train`` of a ``frames`` config.

Steps: (1) every extractor's features for every usable video (cached, see
:mod:`vidfer.features.extract`); (2) per extractor, optional signed square root + L2 of each
step's features (Xu); (3) the classifier:

* ``average``: the mean over frames of one ``logits`` extractor's per-frame class
  probabilities, its classes matched to the dataset's by name (Kahou's baseline);
* ``linear_svm`` / ``rbf_svm``: each extractor's steps aggregated into one vector (``mean``,
  ``mean_var`` or ``kbin``), concatenated, standardised, and classified by calibrated
  one-vs-rest SVMs (:mod:`vidfer.models.svm`);
* ``irnn`` / ``lstm`` / ``bilstm``: the extractors' per-frame features side by side,
  standardised, into a recurrent model (:mod:`vidfer.models.recurrent`) trained with the
  ``optim`` (``sgd`` or ``adamw``, constant rate) and ``train`` (epochs, batch size, clip_grad,
  patience) sections, optionally on random ordered subsets of ``sequence_length`` frames.

The run folder is the same as a 3D model's (config.yaml, classes.json, metrics.jsonl,
checkpoints/best.pt and last.pt, curves.png, eval_val/ and eval_test/), so evaluation and
fusion read both alike. The checkpoint holds the head only (standardisation + classifier); the
extractors are named by the config.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfer.config import FramesConfig, RunConfig
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.errors import ConfigError
from vidfer.evaluation.evaluate import EvalOutcome, write_evaluation
from vidfer.features.aggregate import concatenate, kbin_pool, mean_var, signed_sqrt_l2
from vidfer.features.audio import audio_features
from vidfer.features.extract import (
    extract_audio_features,
    extract_frame_features,
    frame_features,
    load_frame_source,
)
from vidfer.io.atomic import atomic_write_text
from vidfer.models.recurrent import SEQUENCE_MODELS, SequenceClassifier
from vidfer.models.svm import Kernel, SVMHead, fit_svm
from vidfer.training.checkpoint import load_checkpoint, save_checkpoint
from vidfer.training.device import resolve_device, seed_everything
from vidfer.training.run import RunDir
from vidfer.training.sequences import (
    LabelledSequence,
    SequenceTraining,
    evenly_spaced,
    every_step,
    fit_sequences,
    random_subset,
    score_sequences,
)
from vidfer.training.video_attention import extract_run_features, run_feature_sequence
from vidfer.viz.plots import plot_learning_curves

log = logging.getLogger(__name__)

SVMS = {"linear_svm": "linear", "rbf_svm": "rbf"}


class Standardised(nn.Module):
    """Inputs standardised by training statistics (PCA-whitened if asked), then ``classifier``.

    Args:
        classifier: Called as ``classifier(x)`` or, with a mask, ``classifier(x, mask)``.
        dim: Input channels.
        pca: Principal components to keep (whitened), or None.
    """

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    projection: torch.Tensor  # (D, P) with PCA, else (0, 0)

    def __init__(self, classifier: nn.Module, dim: int, pca: int | None = None) -> None:
        super().__init__()
        self.classifier = classifier
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("projection", torch.zeros((dim, pca) if pca else (0, 0)))

    def fit(self, rows: np.ndarray) -> None:
        """Set the statistics (and principal axes) from training rows ``(N, D)``.

        Raises:
            ConfigError: if fewer training rows or channels than PCA components are given.
        """
        std = rows.std(axis=0)
        # Channels (nearly) constant in training would blow up unseen variation tenfold at most.
        floor = max(0.1 * float(std.mean()), 1e-6)
        self.mean.copy_(torch.from_numpy(rows.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.maximum(std, floor)))
        keep = self.projection.shape[1]
        if keep:
            if keep > min(rows.shape):
                raise ConfigError(
                    f"frames.pca: {keep} components from {rows.shape[0]} training videos of "
                    f"{rows.shape[1]} values; use at most {min(rows.shape)}"
                )
            z = (rows - rows.mean(axis=0)) / np.maximum(std, floor)
            _, singular, axes = np.linalg.svd(z, full_matrices=False)  # axes: (min(N, D), D)
            scale = singular[:keep] / np.sqrt(max(len(rows) - 1, 1))  # component std
            # (D, P): project on the axes, then unit variance per component (whitening).
            self.projection.copy_(torch.from_numpy(axes[:keep].T / np.maximum(scale, 1e-12)))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` inputs in training-set units (``(..., P)`` with PCA)."""
        z = (x - self.mean) / self.std
        return z @ self.projection if self.projection.numel() else z

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``(B, D)`` vectors, or of ``(B, T, D)`` sequences with a mask ``(B, T)``."""
        z = self.standardise(x)
        return self.classifier(z) if mask is None else self.classifier(z, mask)


class FrameAverage(nn.Module):
    """Mean over the real frames of per-frame class probabilities (log, for cross-entropy).

    Args:
        columns: For each dataset class, the CNN output column of the same name.
    """

    columns: torch.Tensor  # (K,)

    def __init__(self, columns: list[int]) -> None:
        super().__init__()
        self.register_buffer("columns", torch.tensor(columns))

    def per_frame(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, K_cnn)`` per-frame logits -> ``(B, T, K)`` probabilities of our classes."""
        probabilities = x.softmax(dim=-1)[..., self.columns]  # (B, T, K_cnn) -> (B, T, K)
        return probabilities / probabilities.sum(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, K_cnn)`` per-frame logits, mask ``(B, T)`` -> ``(B, K)`` log-probabilities."""
        probabilities = self.per_frame(x)
        weights = mask.unsqueeze(-1).to(x.dtype)  # (B, T) -> (B, T, 1)
        mean = (probabilities * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return mean.clamp(min=1e-12).log()


@dataclass(frozen=True)
class VideoFeatures:
    """What the head of a pipeline sees of one video.

    Attributes:
        video_id: The video.
        label: Class index (-1 for a new video).
        parts: Per extractor, its (normalised) features ``(T_e, D_e)``, one row per step.
    """

    video_id: str
    label: int
    parts: list[np.ndarray]

    @property
    def steps(self) -> np.ndarray:
        """``(T, sum D_e)``: the extractors side by side (they have the same step count)."""
        return np.concatenate(self.parts, axis=1)

    def vector(self, frames: FramesConfig) -> np.ndarray:
        """The aggregates of every extractor, side by side: one vector per video."""
        return concatenate([_aggregate(frames, part) for part in self.parts])


def _aggregate(frames: FramesConfig, steps: np.ndarray) -> np.ndarray:
    if frames.aggregate == "kbin":
        return kbin_pool(steps, frames.bins)
    return mean_var(steps) if frames.aggregate == "mean_var" else steps.mean(axis=0)


@dataclass(frozen=True)
class PipelineFeatures:
    """The inputs of a pipeline's head for a dataset.

    Attributes:
        videos: Every usable video with all its modalities.
        cnn_classes: The frame CNN's class names (for ``average``), if known.
        missing: Videos lacking a modality (e.g. no sound), with the reason.
    """

    videos: list[VideoFeatures]
    cnn_classes: list[str] | None
    missing: dict[str, str]


def load_video_features(
    config: RunConfig, data: PreparedDataset, device: torch.device
) -> PipelineFeatures:
    """Every usable video's features as the classifier needs them (cached extractions).

    Raises:
        ConfigError: on extractors whose step counts differ under a sequence classifier.
    """
    frames = config.frames
    assert frames is not None
    per_extractor: list[dict[str, np.ndarray]] = []
    cnn_classes: list[str] | None = None
    missing: dict[str, str] = {}
    for extractor in frames.extractors:
        if extractor.video_run is not None:
            found = extract_run_features(RunDir(extractor.video_run), data, device)
            per_extractor.append({vid: seq.features for vid, seq in found.items()})
        elif extractor.audio is not None:
            features, reasons = extract_audio_features(data)
            per_extractor.append(features)
            missing.update(reasons)
        else:
            features, cnn_classes = extract_frame_features(extractor, data, device)
            per_extractor.append(features)
    videos = [
        video_features(
            frames,
            item.row.video_id,
            item.row.label_index,
            [found[item.row.video_id] for found in per_extractor],
        )
        for item in data.items
        if item.row.video_id not in missing
    ]
    if missing:
        log.info("%d video(s) lack a modality: %s", len(missing), sorted(set(missing.values())))
    return PipelineFeatures(videos, cnn_classes, missing)


def write_missing(folder: Path, missing: dict[str, str], videos: list[str]) -> None:
    """``folder/missing.csv``: the ``videos`` lacking a modality, with the reason (for fusion)."""
    rows = "".join(f"{video},{missing[video]}\n" for video in videos if video in missing)
    atomic_write_text(folder / "missing.csv", "video_id,reason\n" + rows)


def video_features(
    frames: FramesConfig, video_id: str, label: int, raw: list[np.ndarray]
) -> VideoFeatures:
    """One video's features, normalised as configured.

    Raises:
        ConfigError: if the extractors' step counts differ under a sequence classifier.
    """
    parts = [np.asarray(part, dtype=np.float64) for part in raw]
    if frames.normalise == "ssr_l2":
        parts = [signed_sqrt_l2(part) for part in parts]
    if frames.classifier.name not in SVMS and len({len(part) for part in parts}) > 1:
        raise ConfigError(
            f"frames.extractors: video {video_id} has {[len(p) for p in parts]} steps per "
            "extractor; a sequence classifier needs one step per frame in every extractor"
        )
    return VideoFeatures(video_id, label, parts)


def _average_columns(classes: list[str], cnn_classes: list[str] | None) -> list[int]:
    if cnn_classes is None:
        raise ConfigError("frames.classifier average: the extractor's CNN has no class names")
    missing = [name for name in classes if name not in cnn_classes]
    if missing:
        raise ConfigError(
            f"frames.classifier average: dataset classes {missing} are not among the CNN's "
            f"classes {cnn_classes}; use a CNN trained on these classes (vidfer train-frames)"
        )
    return [cnn_classes.index(name) for name in classes]


def build_head(
    frames: FramesConfig, dim: int, num_classes: int, state: dict[str, torch.Tensor] | None = None
) -> nn.Module:
    """The head of a pipeline: untrained, or shaped like a saved ``state`` to load into it."""
    name = frames.classifier.name
    if name == "average":
        columns = state["columns"].tolist() if state is not None else list(range(num_classes))
        return FrameAverage(columns)
    if name in SVMS:
        prefix = "classifier."
        inner = {k[len(prefix) :]: v for k, v in (state or {}).items() if k.startswith(prefix)}
        kernel: Kernel = "linear" if name == "linear_svm" else "rbf"
        width = frames.pca or dim  # the SVMs' input size
        svm = SVMHead.from_state(inner) if inner else SVMHead(kernel, width, num_classes)
        return Standardised(svm, dim, frames.pca)
    return Standardised(SEQUENCE_MODELS[name](dim, num_classes, **frames.classifier.params), dim)


def _sequences(videos: list[VideoFeatures]) -> list[LabelledSequence]:
    return [LabelledSequence(video.video_id, video.label, video.steps) for video in videos]


def _vectors(frames: FramesConfig, videos: list[VideoFeatures]) -> tuple[np.ndarray, np.ndarray]:
    """Video vectors ``(N, D)`` and labels ``(N,)``."""
    return np.stack([v.vector(frames) for v in videos]), np.array([v.label for v in videos])


@torch.no_grad()
def score_videos(
    frames: FramesConfig, head: nn.Module, videos: list[VideoFeatures], device: torch.device
) -> EvalOutcome:
    """Video-level outcome of a trained head."""
    head.eval()
    if frames.classifier.name not in SVMS:
        select = evenly_spaced(frames.sequence_length)
        return score_sequences(head, _sequences(videos), device, select)
    x, labels = _vectors(frames, videos)
    logits = head(torch.from_numpy(x).float().to(device)).float().cpu()  # (N, K)
    return EvalOutcome(
        loss=float(F.cross_entropy(logits, torch.from_numpy(labels))),
        probabilities=logits.softmax(dim=1).numpy(),
        labels=labels,
        video_ids=[v.video_id for v in videos],
    )


@dataclass(frozen=True)
class _Split:
    """The videos of each split, and the ones watched for model selection (val, else test)."""

    train: list[VideoFeatures]
    val: list[VideoFeatures]
    test: list[VideoFeatures]

    @property
    def monitor(self) -> list[VideoFeatures]:
        return self.val or self.test


def _summary(
    frames: FramesConfig, head: nn.Module, split: _Split, device: torch.device
) -> dict[str, Any]:
    """The one metrics line of a head fitted in closed form."""
    line: dict[str, Any] = {"epoch": 1}
    if frames.classifier.name != "average":
        outcome = score_videos(frames, head, split.train, device)
        line.update(train_loss=outcome.loss, train_accuracy=outcome.accuracy)
    if split.monitor:
        outcome = score_videos(frames, head, split.monitor, device)
        line.update(val_loss=outcome.loss, val_accuracy=outcome.accuracy)
    return line


def _fit_svm(
    config: RunConfig, frames: FramesConfig, split: _Split, num_classes: int
) -> tuple[nn.Module, dict[str, Any]]:
    """Standardise, grid-search on val (or cross-validate) and calibrate the SVMs."""
    kernel: Kernel = "linear" if frames.classifier.name == "linear_svm" else "rbf"
    x, y = _vectors(frames, split.train)
    head = build_head(frames, x.shape[1], num_classes)
    assert isinstance(head, Standardised)
    head.fit(x)

    def transformed(rows: np.ndarray) -> np.ndarray:
        return head.standardise(torch.from_numpy(rows).float()).double().numpy()

    val = None
    if split.val:
        val_x, val_y = _vectors(frames, split.val)
        val = (transformed(val_x), val_y)
    params = frames.classifier.params
    fit = fit_svm(
        kernel,
        transformed(x),
        y,
        num_classes,
        val=val,
        C=params.get("C"),
        gamma_scale=params.get("gamma_scale"),
        seed=config.seed,
    )
    head.classifier = fit.head
    return head, {"C": fit.C} if fit.gamma is None else {"C": fit.C, "gamma": fit.gamma}


def _optimizer(config: RunConfig, head: nn.Module) -> torch.optim.Optimizer:
    optim = config.optim
    if optim.name == "sgd":
        return torch.optim.SGD(
            head.parameters(), lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )
    return torch.optim.AdamW(head.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)


def _fit_sequence_model(
    config: RunConfig,
    frames: FramesConfig,
    split: _Split,
    classes: list[str],
    run: RunDir,
    device: torch.device,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train the recurrent head by back-propagation; its per-epoch metrics."""
    train = _sequences(split.train)
    head = build_head(frames, train[0].features.shape[1], len(classes))
    assert isinstance(head, Standardised)
    head.fit(np.concatenate([s.features for s in train]))  # every training frame
    head.to(device)
    length = frames.sequence_length
    choose = random_subset(length) if length else every_step
    training = SequenceTraining.of(config.train, config.seed, choose, evenly_spaced(length))
    monitor = _sequences(split.monitor) or train
    metrics = fit_sequences(
        head,
        _optimizer(config, head),
        train,
        monitor,
        training,
        run.folder,
        {"classes": classes},
        device,
    )
    return head, metrics


def train_frame_pipeline(config: RunConfig, out: str | Path) -> list[dict[str, Any]]:
    """Fit a frame-feature pipeline and write its run folder (see the module docstring).

    Returns:
        The metrics lines (one for the closed-form classifiers, one per epoch otherwise).

    Raises:
        ConfigError: on a dataset without a train split, or an unusable extractor/classifier.
    """
    frames = config.frames
    assert frames is not None
    if frames.classifier.name == "average" and len(frames.extractors) != 1:
        raise ConfigError("frames.classifier average takes exactly one extractor (a logits layer)")
    run = RunDir(out)
    device = resolve_device(config.train.device)
    seed_everything(config.seed, deterministic=config.train.deterministic)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    classes = list(data.manifest.classes)
    found = load_video_features(config, data, device)
    cnn_classes = found.cnn_classes
    by_id = {v.video_id: v for v in found.videos}
    split = _Split(
        *(
            [by_id[i.row.video_id] for i in data.split(n) if i.row.video_id in by_id]
            for n in ("train", "val", "test")
        )
    )
    if not split.train:
        raise ConfigError(
            f"{config.data.manifest}: no usable video in the train split"
            + (f" with every modality ({len(found.missing)} lack one)" if found.missing else "")
        )
    run.initialise(config, classes)
    started = time.perf_counter()
    head: nn.Module
    if frames.classifier.name == "average":
        head = FrameAverage(_average_columns(classes, cnn_classes)).to(device)
        metrics = [_summary(frames, head, split, device)]
    elif frames.classifier.name in SVMS:
        head, chosen = _fit_svm(config, frames, split, len(classes))
        head.to(device)
        metrics = [{**_summary(frames, head, split, device), **chosen}]
    else:
        head, metrics = _fit_sequence_model(config, frames, split, classes, run, device)
    metrics[-1].setdefault("seconds", round(time.perf_counter() - started, 3))
    dim = int(head.mean.numel()) if isinstance(head, Standardised) else len(classes)
    state = {"model": head.state_dict(), "dim": dim}
    meta = {"classes": classes, "epoch": len(metrics), "metrics": metrics[-1]}
    save_checkpoint(run.checkpoint("best"), state, meta)
    save_checkpoint(run.checkpoint("last"), state, meta)
    atomic_write_text(run.metrics_path, "".join(json.dumps(m) + "\n" for m in metrics))
    plot_learning_curves(metrics, run.folder / "curves.png")
    for name, videos_of in (("val", split.val), ("test", split.test)):
        if videos_of:
            outcome = score_videos(frames, head, videos_of, device)
            write_evaluation(run.folder / f"eval_{name}", outcome, classes)
            ids = [item.row.video_id for item in data.split(name)]
            write_missing(run.folder / f"eval_{name}", found.missing, ids)
    return metrics


TIMELINE_WINDOW = 16
"""Frames around each frame whose aggregate an SVM pipeline scores for the timeline."""


@torch.no_grad()
def timeline(
    frames: FramesConfig, head: nn.Module, video: VideoFeatures, device: torch.device
) -> tuple[np.ndarray | None, np.ndarray]:
    """Per-step class probabilities ``(T, K)`` and the video's ``(K,)`` for a new video.

    The video's are scored exactly as in evaluation. Per step: the averaged CNN's per-frame
    probabilities (``average``); the recurrent model's classifier on each step's output; for
    the SVMs, their score of the aggregate of a window of ``max(TIMELINE_WINDOW, bins)``
    frames centred on the step. None per step when the extractors' step counts differ.
    """
    head.eval()
    if frames.classifier.name in SVMS:
        video_probs = head(torch.from_numpy(video.vector(frames)).float()[None].to(device))
        lengths = {len(part) for part in video.parts}
        if len(lengths) > 1:
            return None, video_probs.softmax(dim=1)[0].cpu().numpy()
        length, half = lengths.pop(), max(TIMELINE_WINDOW, frames.bins) // 2
        windows = [
            VideoFeatures(
                video.video_id, video.label, [p[max(t - half, 0) : t + half] for p in video.parts]
            )
            for t in range(length)
        ]
        rows = torch.from_numpy(np.stack([w.vector(frames) for w in windows])).float()
        per_step = head(rows.to(device)).softmax(dim=1)  # (T, D) -> (T, K)
        return per_step.cpu().numpy(), video_probs.softmax(dim=1)[0].cpu().numpy()
    chosen = evenly_spaced(frames.sequence_length)(len(video.steps))  # as in evaluation
    steps = torch.from_numpy(video.steps).float()[None].to(device)  # (T, D) -> (1, T, D)
    mask = torch.ones(steps.shape[:2], dtype=torch.bool, device=device)
    video_probs = head(steps[:, chosen], mask[:, chosen]).softmax(dim=1)[0]
    if isinstance(head, FrameAverage):
        per_step = head.per_frame(steps)[0]  # (T, K)
    else:
        assert isinstance(head, Standardised) and isinstance(head.classifier, SequenceClassifier)
        per_step = head.classifier.step_logits(head.standardise(steps), mask)[0].softmax(dim=1)
    return per_step.cpu().numpy(), video_probs.cpu().numpy()


@torch.no_grad()
def video_embedding(
    frames: FramesConfig, head: nn.Module, video: VideoFeatures, device: torch.device
) -> np.ndarray:
    """A video-level feature vector for feature-level fusion.

    The standardised aggregate the SVMs classify (Kahou: the k-bin pooled CNN outputs), the
    recurrent model's read-out (Kahou: the RNN's last hidden state), or, for ``average``, the
    mean per-frame probabilities.
    """
    head.eval()
    if frames.classifier.name in SVMS:
        assert isinstance(head, Standardised)
        vector = torch.from_numpy(video.vector(frames)).float().to(device)
        return head.standardise(vector).cpu().numpy()
    steps = torch.from_numpy(video.steps).float()[None].to(device)  # (T, D) -> (1, T, D)
    chosen = evenly_spaced(frames.sequence_length)(steps.shape[1])
    steps = steps[:, chosen]
    mask = torch.ones(steps.shape[:2], dtype=torch.bool, device=device)
    if isinstance(head, FrameAverage):
        return head(steps, mask).exp()[0].cpu().numpy()
    assert isinstance(head, Standardised) and isinstance(head.classifier, SequenceClassifier)
    return head.classifier.hidden_state(head.standardise(steps), mask)[0].cpu().numpy()


def new_video_features(
    frames: FramesConfig, video: np.ndarray, path: Path, device: torch.device
) -> tuple[VideoFeatures | None, str]:
    """The features of a new video (its file, its prepared frames ``(T, H, W, 3)``), as in
    training, and ``ok``; or None and the reason a modality is missing (``no_audio``, ...)."""
    raw = []
    for extractor in frames.extractors:
        if extractor.audio is not None:
            sound = audio_features(path)
            if sound.features is None:
                return None, sound.status
            raw.append(sound.features[None])  # one step: (1, 1582)
        elif extractor.video_run is not None:
            run = RunDir(extractor.video_run)
            model, _ = run.load_model(device)
            sequence = run_feature_sequence(model, run.config(), video, device)
            raw.append(sequence.scores.float().cpu().numpy().T)  # (F, T') -> (T', F)
        else:
            source = load_frame_source(extractor, device)
            raw.append(frame_features(source, video, extractor.spatial, extractor.batch_size))
    return video_features(frames, "", -1, raw), "ok"


def load_frame_head(run: RunDir, device: torch.device) -> nn.Module:
    """The trained head of a frame-pipeline run, in eval mode."""
    config = run.config()
    assert config.frames is not None
    state = load_checkpoint(run.best_or_last())
    head = build_head(config.frames, int(state["dim"]), len(run.classes()), state["model"])
    head.load_state_dict(state["model"])
    return head.to(device).eval()


def evaluate_frame_run(run: RunDir, split: str) -> EvalOutcome:
    """Score one split with a trained frame pipeline (features from the cache).

    Videos lacking a modality are left out and listed in ``RUN/eval_<split>/missing.csv``.

    Raises:
        ConfigError: if the split has no usable video.
    """
    config = run.config()
    assert config.frames is not None
    device = resolve_device(config.train.device)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    wanted = {item.row.video_id for item in data.split(split)}
    if not wanted:
        raise ConfigError(f"{config.data.manifest}: no usable video in split {split!r}")
    found = load_video_features(config, data, device)
    write_missing(run.folder / f"eval_{split}", found.missing, sorted(wanted))
    chosen = [video for video in found.videos if video.video_id in wanted]
    if not chosen:
        raise ConfigError(f"{run.folder}: no video of split {split!r} has every modality")
    return score_videos(config.frames, load_frame_head(run, device), chosen, device)
