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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfer.config import EvalConfig, FramesConfig, RunConfig, RunKind
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.device import resolve_device, seed_everything
from vidfer.errors import ConfigError
from vidfer.evaluation.evaluate import EvalOutcome, write_evaluation
from vidfer.features.audio import require_audio
from vidfer.io.atomic import atomic_write_text
from vidfer.io.checkpoint import load_checkpoint, save_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models.frame_heads import (
    SVMS,
    FrameAverage,
    Standardised,
    build_head,
    fit_svm_head,
)
from vidfer.pipelines.base import FittedPipeline, Scored, Scorer
from vidfer.pipelines.frame_features import (
    VideoFeatures,
    load_video_features,
    new_video_features,
    write_missing,
)
from vidfer.pipelines.frame_timeline import timeline, video_embedding
from vidfer.training.sequences import (
    LabelledSequence,
    SequenceTraining,
    evenly_spaced,
    every_step,
    fit_sequences,
    random_subset,
    score_sequences,
)
from vidfer.viz.plots import plot_learning_curves

log = logging.getLogger(__name__)


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


def _learned_from(frames: FramesConfig, split: _Split) -> _Split:
    """The videos the head fits on (``train``) and selects on (``monitor``), for ``videos.json``:
    none for the frame average, val for the SVMs' grid search, the watched split otherwise."""
    if frames.classifier.name == "average":
        return _Split([], [], [])
    if frames.classifier.name in SVMS:
        return _Split(split.train, split.val, [])
    return _Split(split.train, split.monitor, [])


def _fit_svm(
    config: RunConfig, frames: FramesConfig, split: _Split, num_classes: int
) -> tuple[nn.Module, dict[str, Any]]:
    """Standardise, grid-search on val (or cross-validate) and calibrate the SVMs."""
    x, y = _vectors(frames, split.train)
    val = _vectors(frames, split.val) if split.val else None
    return fit_svm_head(
        frames.classifier, x, y, num_classes, val=val, pca=frames.pca, seed=config.seed
    )


def head_optimizer(config: RunConfig, head: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW, as the run's ``optim`` section says (constant rate)."""
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
    *,
    resume: bool,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train the recurrent head by back-propagation (continuing from ``checkpoints/last.pt``
    with ``resume``; it writes best.pt and last.pt every epoch); its per-epoch metrics."""
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
        head_optimizer(config, head),
        train,
        monitor,
        training,
        run.folder,
        {"classes": classes},
        device,
        resume=resume and run.checkpoint("last").exists(),
        extra={"dim": int(head.mean.numel())},
    )
    return head, metrics


def train_frame_pipeline(
    config: RunConfig, out: str | Path, *, resume: bool = False
) -> list[dict[str, Any]]:
    """Fit a frame-feature pipeline and write its run folder (see the module docstring).

    Features come from their cache (exact arrays), so that a closed-form head fitted again is
    the same head (the fits are seeded); a recurrent head continues from its last epoch with
    ``resume``.

    Returns:
        The metrics lines (one for the closed-form classifiers, one per epoch otherwise).

    Raises:
        ConfigError: on a dataset without a train split, or an unusable extractor/classifier.
        MissingExtraError: on an audio extractor without the audio extra.
    """
    frames = config.frames
    assert frames is not None
    if frames.classifier.name == "average" and len(frames.extractors) != 1:
        raise ConfigError("frames.classifier average takes exactly one extractor (a logits layer)")
    if any(extractor.audio is not None for extractor in frames.extractors):
        require_audio()  # before the videos are prepared
    run = RunDir(out)
    device = resolve_device(config.train.device)
    seed_everything(config.seed, deterministic=config.train.deterministic)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    classes = list(data.manifest.classes)
    found = load_video_features(config, data, device)
    # Extracting features draws random numbers (building the extractors) that reading them
    # from the cache does not: seeded again, the head is the same either way.
    seed_everything(config.seed, deterministic=config.train.deterministic)
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
    learned = _learned_from(frames, split)
    run.initialise(
        config,
        classes,
        train=[video.video_id for video in learned.train],
        stopping=[video.video_id for video in learned.monitor],
    )
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
        head, metrics = _fit_sequence_model(
            config, frames, split, classes, run, device, resume=resume
        )
    if frames.classifier.name in SVMS or frames.classifier.name == "average":
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


class FramesPipeline(FittedPipeline):
    """Kahou et al., Xu et al.: per-frame features, then a closed-form or recurrent head."""

    kind: RunKind = "frames"

    def fit(self, config: RunConfig, folder: Path, *, resume: bool) -> list[dict[str, Any]]:
        """Extract (or read the cached) features and fit the head (a recurrent head continues
        from its last epoch on resume; a closed-form one is fitted again, identically)."""
        return train_frame_pipeline(config, folder, resume=resume)

    def evaluate(self, run: RunDir, split: str) -> EvalOutcome:
        """The head's video scores on one split (features from the cache)."""
        return evaluate_frame_run(run, split)

    def scorer(
        self, run: RunDir, video: Path, settings: EvalConfig, device: torch.device
    ) -> Scorer:
        """The head's scores of the whole video (a missing modality, e.g. no sound: none), its
        frame features computed piece by piece."""
        config = run.config()
        frames_config = config.frames
        assert frames_config is not None
        head = load_frame_head(run, device)

        def score(pieces: Iterable[np.ndarray]) -> Scored:
            found, status = new_video_features(
                frames_config, pieces, video, config.data.limits, device
            )
            if found is None:
                return Scored(None, None, status)
            return Scored(*timeline(frames_config, head, found, device))

        return score

    def model_name(self, config: RunConfig) -> str:
        """``frames:`` and the classifier's name."""
        assert config.frames is not None
        return f"frames:{config.frames.classifier.name}"

    def video_features(
        self, run: RunDir, data: PreparedDataset, device: torch.device
    ) -> dict[str, np.ndarray]:
        """The head's video embedding of every video with all its modalities (cached features)."""
        config = run.config()
        assert config.frames is not None
        videos = load_video_features(config, data, device).videos
        head = load_frame_head(run, device)
        return {v.video_id: video_embedding(config.frames, head, v, device) for v in videos}
