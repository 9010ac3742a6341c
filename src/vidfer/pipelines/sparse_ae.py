"""Baccouche et al. (2012) through ``vidfer train``: sparse auto-encoder, then a BLSTM.

Steps of a run whose config has a ``sparse_ae`` section:

1. motion-selected ``M x M x T`` gray patches of the training videos, each with its shift
   neighbourhood (:mod:`vidfer.features.spacetime_patches`);
2. the sparse auto-encoder trained online on them (:mod:`vidfer.models.sparse_autoencoder`);
   its basis goes to ``basis.png``, the number of active code units per patch to
   ``sparsity.json`` and to the ``autoencoder`` lines of ``metrics.jsonl``;
3. every video's feature sequence: per space-time block, the codes of its grid of patches
   (``sparse_ae.code``: the encoder's responses or their fixed-gain sparse version) side by
   side or pooled (``sparse_ae.pool``), cached in ``RUN/features/`` (keyed by the
   auto-encoder's weights and these options);
4. a bidirectional LSTM with a softmax at every step (:mod:`vidfer.models.framewise_blstm`) on
   standardised features, trained with the ``optim`` and ``train`` sections by
   :func:`vidfer.training.sequences.fit_sequences` (early stopping on the validation loss).

The run folder is that of a 3D model (config.yaml, classes.json, metrics.jsonl, checkpoints/
best.pt and last.pt, curves.png, eval_val/, eval_test/) plus basis.png, sparsity.json and
features/. best.pt and last.pt hold the auto-encoder and the classifier (last.pt also what
resuming the BLSTM needs); checkpoints/autoencoder.pt is the first stage's result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfer.config import EvalConfig, RunConfig, RunKind, SparseAEConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.device import resolve_device, seed_everything
from vidfer.errors import ConfigError
from vidfer.evaluation.evaluate import EvalOutcome, write_evaluation
from vidfer.features.sparse_codes import BlockGrids, learn_autoencoder, patch_codes
from vidfer.features.store import FeatureStore
from vidfer.io.atomic import atomic_write_text
from vidfer.io.checkpoint import load_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models.frame_heads import Standardised
from vidfer.models.framewise_blstm import FramewiseBLSTM
from vidfer.models.sparse_autoencoder import SparseAutoEncoder, build_autoencoder
from vidfer.pipelines.base import FittedPipeline, Scored, Scorer, no_video_features
from vidfer.pipelines.frames import head_optimizer
from vidfer.training.resume import stage
from vidfer.training.sequences import (
    LabelledSequence,
    SequenceTraining,
    fit_sequences,
    score_sequences,
)
from vidfer.viz.plots import plot_learning_curves


def _settings(config: RunConfig) -> SparseAEConfig:
    assert config.sparse_ae is not None
    return config.sparse_ae


def pool_grid(values: np.ndarray, pool: str) -> np.ndarray:
    """One vector per block from its grid ``(S, G, X)``, as ``sparse_ae.pool`` says.

    Returns:
        ``(S, G X)``: the grid side by side (``none``), or ``(S, X)``: each value pooled over
        the grid (``max`` or ``mean``).
    """
    if pool == "max":
        return values.max(axis=1)  # -> (S, X)
    if pool == "mean":
        return values.mean(axis=1)  # -> (S, X)
    count, positions, width = values.shape
    return values.reshape(count, positions * width)  # -> (S, G*X)


def stream_codes(
    model: SparseAutoEncoder, pieces: Iterable[np.ndarray], settings: SparseAEConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One video's feature sequence from its stored frames, given piece by piece.

    Only a piece's blocks and the frames carried over to the next piece are held besides the
    features (:class:`~vidfer.features.sparse_codes.BlockGrids`): the result does not depend on
    the pieces.

    Args:
        model: The trained auto-encoder.
        pieces: The video's stored frames ``(n, H, W, 3)``, in order.
        settings: The run's ``sparse_ae`` section.

    Returns:
        ``(S, D)``: one vector per space-time block (see :func:`pool_grid`), and ``(L,)``: the
        block of every frame, the last one that starts at or before it.

    Raises:
        ConfigError: if the video has fewer frames than a block.
    """
    grids = BlockGrids(settings)
    steps = [
        pool_grid(patch_codes(model, grids.push(piece), settings.code), settings.pool)
        for piece in pieces
    ]  # (k, G, D) -> (k, G, N) -> (k, .) per piece
    starts = grids.cutter.close()
    owner = np.searchsorted(starts, np.arange(grids.cutter.frames), side="right") - 1  # (L,)
    return np.concatenate(steps), owner  # (S, .)


def video_codes(
    model: SparseAutoEncoder, frames: np.ndarray, settings: SparseAEConfig
) -> np.ndarray:
    """One video's feature sequence ``(S, D)``: :func:`stream_codes` of the video as one piece."""
    return stream_codes(model, [frames], settings)[0]


def _feature_store(
    folder: Path, model: SparseAutoEncoder, settings: SparseAEConfig
) -> FeatureStore:
    """The run's cache of feature sequences, keyed by the auto-encoder's exact weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    # The options that change a video's features once the auto-encoder is fixed.
    keys = ("frame_size", "track", "motion_pixel", "block_stride", "grayscale", "pool", "code")
    settings_key = {k: settings.model_dump()[k] for k in keys}
    description = {"method": "baccouche2012", "autoencoder": digest.hexdigest(), **settings_key}
    return FeatureStore(folder / "features", description)


def video_sequences(
    model: SparseAutoEncoder,
    settings: SparseAEConfig,
    data: PreparedDataset,
    items: list[VideoItem],
    folder: Path,
) -> list[LabelledSequence]:
    """The feature sequences of ``items`` (computed once, then read from the run's cache)."""
    store = _feature_store(folder, model, settings)
    out = []
    for item in items:
        if not store.has(item.key):
            codes = video_codes(model, data.store.frames(item.key), settings)
            store.save(item.key, codes, {"video_id": item.row.video_id})
        features, _ = store.load(item.key)
        out.append(LabelledSequence(item.row.video_id, item.row.label_index, features))
    return out


def _build_head(settings: SparseAEConfig, dim: int, num_classes: int) -> Standardised:
    return Standardised(FramewiseBLSTM(dim, num_classes, settings.hidden), dim)


def train_sparse_ae_pipeline(
    config: RunConfig, out: str | Path, *, resume: bool = False
) -> list[dict[str, Any]]:
    """Train the auto-encoder and the BLSTM; write the run folder (see the module docstring).

    Each stage checkpoints: the auto-encoder once trained (``checkpoints/autoencoder.pt``), the
    videos' codes as they are computed (the run's feature cache), the BLSTM after every epoch
    (``checkpoints/last.pt``). With ``resume`` a run goes on from the last of them and ends
    bit-identical to an uninterrupted one.

    Returns:
        The BLSTM's metrics lines, one per epoch.

    Raises:
        ConfigError: on a dataset without a train split, or without a moving patch.
    """
    settings = _settings(config)
    run = RunDir(out)
    device = resolve_device(config.train.device)
    seed_everything(config.seed, deterministic=config.train.deterministic)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    classes = list(data.manifest.classes)
    train_items, val_items, test_items = (data.split(n) for n in ("train", "val", "test"))
    if not train_items:
        raise ConfigError(f"{config.data.manifest}: no usable video in the train split")
    run.initialise(  # the BLSTM is stopped on val (else test, else train), below
        config,
        classes,
        train=[item.row.video_id for item in train_items],
        stopping=[item.row.video_id for item in val_items or test_items or train_items],
    )

    def learn() -> dict[str, Any]:
        learnt, lines = learn_autoencoder(data, train_items, settings, config.seed, run.folder)
        return {"autoencoder": learnt.state_dict(), "lines": lines}

    learnt = stage(run.checkpoint("autoencoder"), learn, resume=resume)
    model = build_autoencoder(settings)
    model.load_state_dict(learnt["autoencoder"])
    ae_lines = learnt["lines"]

    train, val, test = (
        video_sequences(model, settings, data, items, run.folder)
        for items in (train_items, val_items, test_items)
    )

    dim = train[0].features.shape[1]
    head = _build_head(settings, dim, len(classes))
    head.fit(np.concatenate([np.asarray(s.features) for s in train]))
    head.to(device)
    training = SequenceTraining.of(config.train, config.seed)
    meta: dict[str, Any] = {"classes": classes}
    lines = fit_sequences(
        head,
        head_optimizer(config, head),
        train,
        val or test or train,
        training,
        run.folder,
        meta,
        device,
        resume=resume and run.checkpoint("last").exists(),
        extra={"autoencoder": model.state_dict(), "dim": dim},
    )
    every_line = [*ae_lines, *({"stage": "blstm", **line} for line in lines)]
    atomic_write_text(run.metrics_path, "".join(json.dumps(m) + "\n" for m in every_line))
    plot_learning_curves(lines, run.folder / "curves.png")
    for name, sequences in (("val", val), ("test", test)):
        if sequences:
            outcome = score_sequences(head, sequences, device)
            write_evaluation(run.folder / f"eval_{name}", outcome, classes)
    return lines


def load_sparse_ae_run(run: RunDir, device: torch.device) -> tuple[SparseAutoEncoder, Standardised]:
    """The trained auto-encoder and classifier of a run (eval mode)."""
    settings = _settings(run.config())
    state = load_checkpoint(run.best_or_last())
    model = build_autoencoder(settings)
    model.load_state_dict(state["autoencoder"])
    head = _build_head(settings, int(state["dim"]), len(run.classes()))
    head.load_state_dict(state["model"])
    return model.eval(), head.to(device).eval()


@torch.no_grad()
def sparse_ae_timeline(
    model: SparseAutoEncoder,
    head: Standardised,
    settings: SparseAEConfig,
    pieces: Iterable[np.ndarray],
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame ``(L, K)`` and video ``(K,)`` class probabilities of a new video.

    The video's are scored as in evaluation; a frame gets the softmax output of the last block
    that starts at or before it (with blocks side by side, the block holding it). The features
    are computed piece by piece (:func:`stream_codes`), the BLSTM reads them all at once.

    Args:
        model: The run's auto-encoder.
        head: The run's standardised BLSTM.
        settings: The run's ``sparse_ae`` section.
        pieces: The video's ``L`` frames ``(n, H, W, 3)`` in order, prepared as the run's
            videos were.
        device: Where the BLSTM runs.

    Raises:
        ConfigError: if the video has fewer frames than a block.
    """
    codes, owner = stream_codes(model, pieces, settings)  # (S, D), (L,)
    steps = torch.from_numpy(codes).float()  # (S, D)
    steps = steps[None].to(device)  # -> (1, S, D)
    mask = torch.ones(steps.shape[:2], dtype=torch.bool, device=device)
    video = head(steps, mask).softmax(dim=1)[0]  # (K,)
    blstm = head.classifier
    assert isinstance(blstm, FramewiseBLSTM)
    per_block = blstm.step_logits(head.standardise(steps), mask)[0].softmax(dim=1)  # (S, K)
    return per_block.cpu().numpy()[owner], video.cpu().numpy()


def evaluate_sparse_ae_run(run: RunDir, split: str) -> EvalOutcome:
    """Score one split with a trained run (features from the run's cache).

    Raises:
        ConfigError: if the split has no usable video.
    """
    config = run.config()
    device = resolve_device(config.train.device)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    items = data.split(split)
    if not items:
        raise ConfigError(f"{config.data.manifest}: no usable video in split {split!r}")
    model, head = load_sparse_ae_run(run, device)
    sequences = video_sequences(model, _settings(config), data, items, run.folder)
    return score_sequences(head, sequences, device)


class SparseAEPipeline(FittedPipeline):
    """Baccouche et al.: a sparse auto-encoder's codes of the moving blocks, then a BLSTM."""

    kind: RunKind = "sparse_ae"

    def fit(self, config: RunConfig, folder: Path, *, resume: bool) -> list[dict[str, Any]]:
        """Learn the codes and the BLSTM (a resumed run goes on from its last stage or epoch)."""
        return train_sparse_ae_pipeline(config, folder, resume=resume)

    def evaluate(self, run: RunDir, split: str) -> EvalOutcome:
        """The BLSTM's video scores on one split."""
        return evaluate_sparse_ae_run(run, split)

    def scorer(
        self, run: RunDir, video: Path, settings: EvalConfig, device: torch.device
    ) -> Scorer:
        """Every frame gets the BLSTM output of its block; the codes are computed piecewise."""
        sparse_ae = _settings(run.config())
        autoencoder, head = load_sparse_ae_run(run, device)

        def score(pieces: Iterable[np.ndarray]) -> Scored:
            return Scored(*sparse_ae_timeline(autoencoder, head, sparse_ae, pieces, device))

        return score

    def model_name(self, config: RunConfig) -> str:
        """The paper's system."""
        return "baccouche2012_sparse_ae_blstm"

    def video_features(
        self, run: RunDir, data: PreparedDataset, device: torch.device
    ) -> dict[str, np.ndarray]:
        """None: fuse this kind's scores, not its features."""
        raise no_video_features("sparse auto-encoder")
