"""Kahou et al. (2015, §4) through ``vidfer train``: the activity modality.

Local motion features learned without labels, a bag of words, an SVM. Steps of a run whose
config has an ``activity`` section:

1. a synchrony auto-encoder (:mod:`vidfer.models.synchrony_autoencoder`, after Konda et al.
   2014, as Kahou et al. used) learned on the moving ``16 x 16 x 10`` blocks of the training
   videos;
2. every video encoded block by block: the synchrony amplitudes of every moving grid block
   (its local descriptors);
3. k-means (scikit-learn) on the training videos' descriptors: a vocabulary of ``words``;
4. a video is its normalised histogram of words (a bag of words: the order is lost);
5. one-vs-rest SVMs over the histograms, grid-searched on the validation split, calibrated
   (:func:`vidfer.models.frame_heads.fit_svm_head`).

The run folder holds config.yaml, classes.json, metrics.jsonl (the auto-encoder's loss per
epoch, then the SVM's line), checkpoints/ (auto-encoder, vocabulary and SVMs), and eval_val/ and
eval_test/ with ``predictions.csv`` for ``vidfer fuse``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans

from vidfer.config import ActivityConfig, RunConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.errors import ConfigError
from vidfer.evaluation.evaluate import EvalOutcome, write_evaluation
from vidfer.features.spacetime_patches import block_patches, video_volume
from vidfer.features.sparse_codes import neighbourhood_centres, training_patches
from vidfer.io.atomic import atomic_write_text
from vidfer.models.frame_heads import Standardised, fit_svm_head, svm_head
from vidfer.models.synchrony_autoencoder import SynchronyAutoEncoder, train_synchrony_autoencoder
from vidfer.training.checkpoint import load_checkpoint, save_checkpoint
from vidfer.training.device import seed_everything
from vidfer.training.run import RunDir


def _settings(config: RunConfig) -> ActivityConfig:
    assert config.activity is not None
    return config.activity


def _frames_of_blocks(patches: np.ndarray, channels: int, depth: int) -> np.ndarray:
    """Flattened ``(..., C T M M)`` patches -> ``(..., T, C M M)``: one row per frame."""
    shaped = patches.reshape(*patches.shape[:-1], channels, depth, -1)  # (..., C, T, M*M)
    return np.ascontiguousarray(np.swapaxes(shaped, -3, -2)).reshape(
        *patches.shape[:-1], depth, -1
    )  # -> (..., T, C, M*M) -> (..., T, C*M*M)


def build_activity_autoencoder(settings: ActivityConfig, seed: int = 0) -> SynchronyAutoEncoder:
    """An untrained synchrony auto-encoder with the config's sizes."""
    channels = 1 if settings.grayscale else 3
    return SynchronyAutoEncoder(
        channels * settings.patch * settings.patch,
        settings.depth,
        settings.hidden,
        settings.components,
        settings.corruption,
        seed,
    )


def learn_activity_codes(
    data: PreparedDataset, items: list[VideoItem], settings: ActivityConfig, seed: int
) -> tuple[SynchronyAutoEncoder, list[dict[str, Any]]]:
    """Train the synchrony auto-encoder on the moving blocks of ``items``.

    Returns:
        The model and one metrics line per epoch (mean reconstruction error).
    """
    started = time.perf_counter()
    neighbourhoods = training_patches(data, items, settings, seed)  # (P, C, T', M', M')
    blocks = neighbourhood_centres(neighbourhoods, settings.patch, settings.depth)
    channels = blocks.shape[1]
    # (P, C, T, M, M) -> (P, C*T*M*M) -> (P, T, C*M*M)
    rows = _frames_of_blocks(blocks.reshape(len(blocks), -1), channels, settings.depth)
    model = build_activity_autoencoder(settings, seed)
    losses = train_synchrony_autoencoder(
        model,
        rows,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=seed,
    )
    seconds = round(time.perf_counter() - started, 3)
    lines: list[dict[str, Any]] = [
        {"stage": "autoencoder", "ae_epoch": epoch + 1, "loss": loss, "blocks": len(rows)}
        for epoch, loss in enumerate(losses)
    ]
    lines[-1]["seconds"] = seconds
    return model.eval(), lines


def descriptors(
    model: SynchronyAutoEncoder, data: PreparedDataset, item: VideoItem, settings: ActivityConfig
) -> np.ndarray:
    """One video's local descriptors ``(B, K)``: the codes of its moving grid blocks.

    A grid block moves as a training block does (more than ``motion_share`` of its pixels
    change by more than ``motion_pixel`` from its first to its last frame); a video with no
    moving block keeps its most moving one, so that every video has a bag of words.
    """
    video = video_volume(data.store.frames(item.key), settings.frame_size, settings.grayscale)
    patches = block_patches(
        video, settings.patch, settings.depth, settings.block_stride or settings.depth
    )  # (S, G, C*T*M*M)
    rows = _frames_of_blocks(patches, video.shape[3], settings.depth)  # -> (S, G, T, C*M*M)
    rows = rows.reshape(-1, *rows.shape[2:])  # -> (S*G, T, C*M*M)
    change = np.abs(rows[:, -1] - rows[:, 0])  # (S*G, C*M*M)
    channels = video.shape[3]
    # (S*G, C, M*M): a pixel moves when one of its channels does.
    moving = (change.reshape(len(rows), channels, -1) > settings.motion_pixel).any(axis=1)
    share = moving.mean(axis=1)  # (S*G,)
    keep = share > settings.motion_share
    if not keep.any():
        keep = share == share.max()
    return model.features(torch.from_numpy(rows[keep])).numpy()  # -> (B, K)


def fit_vocabulary(per_video: list[np.ndarray], settings: ActivityConfig, seed: int) -> np.ndarray:
    """k-means centres ``(words, N)`` of at most ``settings.descriptors`` training descriptors.

    Raises:
        ConfigError: if there are fewer descriptors than words.
    """
    rows = np.concatenate(per_video)
    if len(rows) < settings.words:
        raise ConfigError(
            f"activity.words {settings.words}: the training videos give only {len(rows)} "
            "descriptors; lower activity.words"
        )
    rng = np.random.default_rng(seed)
    if len(rows) > settings.descriptors:
        rows = rows[rng.choice(len(rows), settings.descriptors, replace=False)]
    kmeans = KMeans(n_clusters=settings.words, n_init=3, random_state=seed).fit(rows)
    return np.asarray(kmeans.cluster_centers_, dtype=np.float32)


def bag_of_words(rows: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """Share of a video's descriptors ``(P, N)`` nearest to each word of ``(W, N)``: ``(W,)``."""
    # Squared distances without the (P, W, N) difference tensor: |r|^2 - 2 r.c + |c|^2.
    distances = (
        (rows**2).sum(axis=1, keepdims=True)
        - 2.0 * rows @ vocabulary.T
        + (vocabulary**2).sum(axis=1)
    )  # (P, W)
    counts = np.bincount(distances.argmin(axis=1), minlength=len(vocabulary))
    return (counts / max(len(rows), 1)).astype(np.float32)


def _histograms(
    model: SynchronyAutoEncoder,
    vocabulary: np.ndarray,
    data: PreparedDataset,
    items: list[VideoItem],
    settings: ActivityConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Bags of words ``(V, W)`` and labels ``(V,)`` of ``items``."""
    x = np.stack([bag_of_words(descriptors(model, data, i, settings), vocabulary) for i in items])
    return x, np.array([item.row.label_index for item in items])


def _outcome(head: Standardised, x: np.ndarray, items: list[VideoItem]) -> EvalOutcome:
    """Class probabilities and loss of the SVMs on bags of words ``(V, W)``."""
    labels = np.array([item.row.label_index for item in items])
    with torch.no_grad():
        logits = head(torch.from_numpy(x))  # (V, W) -> (V, K)
        loss = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)))
    return EvalOutcome(
        loss=loss,
        probabilities=logits.softmax(dim=1).numpy(),
        labels=labels,
        video_ids=[item.row.video_id for item in items],
    )


def train_activity_pipeline(config: RunConfig, out: str | Path) -> list[dict[str, Any]]:
    """Learn the codes, the vocabulary and the SVMs; write the run folder (module docstring).

    Returns:
        The metrics lines: one per auto-encoder epoch, then the SVM's.

    Raises:
        ConfigError: on a dataset without a train split, without a moving patch, or with fewer
            descriptors than words.
    """
    settings = _settings(config)
    run = RunDir(out)
    seed_everything(config.seed, deterministic=config.train.deterministic)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    classes = list(data.manifest.classes)
    train_items, val_items, test_items = (data.split(n) for n in ("train", "val", "test"))
    if not train_items:
        raise ConfigError(f"{config.data.manifest}: no usable video in the train split")
    run.initialise(config, classes)
    model, lines = learn_activity_codes(data, train_items, settings, config.seed)

    started = time.perf_counter()
    vocabulary = fit_vocabulary(
        [descriptors(model, data, item, settings) for item in train_items], settings, config.seed
    )
    train_x, train_y = _histograms(model, vocabulary, data, train_items, settings)
    val = _histograms(model, vocabulary, data, val_items, settings) if val_items else None
    head, chosen = fit_svm_head(
        settings.classifier, train_x, train_y, len(classes), val=val, seed=config.seed
    )
    line: dict[str, Any] = {"stage": "svm", "epoch": 1, **chosen}
    train_outcome = _outcome(head, train_x, train_items)
    line.update(train_loss=train_outcome.loss, train_accuracy=train_outcome.accuracy)
    if val is not None:
        val_outcome = _outcome(head, val[0], val_items)
        line.update(val_loss=val_outcome.loss, val_accuracy=val_outcome.accuracy)
    line["seconds"] = round(time.perf_counter() - started, 3)
    lines.append(line)

    state = {
        "autoencoder": model.state_dict(),
        "vocabulary": torch.from_numpy(vocabulary),
        "model": head.state_dict(),
    }
    meta = {"classes": classes, "epoch": 1, "metrics": line}
    save_checkpoint(run.checkpoint("best"), state, meta)
    save_checkpoint(run.checkpoint("last"), state, meta)
    atomic_write_text(run.metrics_path, "".join(json.dumps(m) + "\n" for m in lines))
    if val is not None:
        write_evaluation(run.folder / "eval_val", val_outcome, classes)
    if test_items:
        test_x, _ = _histograms(model, vocabulary, data, test_items, settings)
        write_evaluation(run.folder / "eval_test", _outcome(head, test_x, test_items), classes)
    return lines


def evaluate_activity_run(run: RunDir, split: str) -> EvalOutcome:
    """Score one split with a trained activity run.

    Raises:
        ConfigError: if the split has no usable video.
    """
    config = run.config()
    settings = _settings(config)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    items = data.split(split)
    if not items:
        raise ConfigError(f"{config.data.manifest}: no usable video in split {split!r}")
    state = load_checkpoint(run.best_or_last())
    model = build_activity_autoencoder(settings)
    model.load_state_dict(state["autoencoder"])
    model.eval()
    vocabulary = state["vocabulary"].numpy()
    head = svm_head(settings.classifier, len(vocabulary), len(run.classes()), state=state["model"])
    head.load_state_dict(state["model"])
    x, _ = _histograms(model, vocabulary, data, items, settings)
    return _outcome(head.eval(), x, items)
