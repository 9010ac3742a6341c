"""Kahou et al. (2015, §4) through ``vidfer train``: the activity modality.

Local motion features learned without labels, a bag of words, an SVM. Steps of a run whose
config has an ``activity`` section (1-2: :mod:`vidfer.features.synchrony_codes`, 3-4:
:mod:`vidfer.features.bag_of_words`, 5 and the run: here):

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
epoch, then the SVM's line), checkpoints/ (best.pt and last.pt: auto-encoder, vocabulary and
SVMs; autoencoder.pt and vocabulary.pt: the stages, for resuming), and eval_val/ and
eval_test/ with ``predictions.csv`` for ``vidfer fuse``.

A new video (``vidfer predict``) is coded piece by piece (:func:`stream_descriptors`) and
scored by :func:`activity_timeline`: its bag of words as in evaluation, and per frame the bag
of words of the blocks around it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfer.config import ActivityConfig, EvalConfig, RunConfig, RunKind
from vidfer.data.dataset import VideoItem
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.device import seed_everything
from vidfer.errors import ConfigError
from vidfer.evaluation.evaluate import EvalOutcome, write_evaluation
from vidfer.features.bag_of_words import bag_of_words, fit_vocabulary, nearest_words
from vidfer.features.synchrony_codes import (
    build_activity_autoencoder,
    descriptors,
    learn_activity_codes,
    stream_descriptors,
)
from vidfer.io.atomic import atomic_write_text
from vidfer.io.checkpoint import load_checkpoint, save_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models.frame_heads import Standardised, fit_svm_head, svm_head
from vidfer.models.synchrony_autoencoder import SynchronyAutoEncoder
from vidfer.pipelines.base import FittedPipeline, Scored, Scorer, no_video_features
from vidfer.pipelines.frame_timeline import TIMELINE_WINDOW
from vidfer.training.resume import stage


def _settings(config: RunConfig) -> ActivityConfig:
    assert config.activity is not None
    return config.activity


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


def _fit_svms(
    model: SynchronyAutoEncoder,
    vocabulary: np.ndarray,
    data: PreparedDataset,
    splits: tuple[list[VideoItem], list[VideoItem]],
    settings: ActivityConfig,
    seed: int,
) -> tuple[Standardised, dict[str, Any], EvalOutcome | None]:
    """Step 5: the SVMs on the bags of words of the train videos, their C chosen on the val
    videos (``splits``); the SVMs, their metrics line and the val outcome (None without val)."""
    train_items, val_items = splits
    train_x, train_y = _histograms(model, vocabulary, data, train_items, settings)
    val = _histograms(model, vocabulary, data, val_items, settings) if val_items else None
    head, chosen = fit_svm_head(
        settings.classifier, train_x, train_y, len(data.manifest.classes), val=val, seed=seed
    )
    line: dict[str, Any] = {"stage": "svm", "epoch": 1, **chosen}
    train_outcome = _outcome(head, train_x, train_items)
    line.update(train_loss=train_outcome.loss, train_accuracy=train_outcome.accuracy)
    val_outcome = None
    if val is not None:
        val_outcome = _outcome(head, val[0], val_items)
        line.update(val_loss=val_outcome.loss, val_accuracy=val_outcome.accuracy)
    return head, line, val_outcome


def train_activity_pipeline(
    config: RunConfig, out: str | Path, *, resume: bool = False
) -> list[dict[str, Any]]:
    """Learn the codes, the vocabulary and the SVMs; write the run folder (module docstring).

    The auto-encoder and the vocabulary are checkpointed once learnt
    (``checkpoints/autoencoder.pt``, ``checkpoints/vocabulary.pt``); with ``resume`` a run reads
    the stages it finished and fits the rest (the SVMs are fitted again: seeded, the same).

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
    run.initialise(  # the SVMs' C is chosen on val
        config,
        classes,
        train=[item.row.video_id for item in train_items],
        stopping=[item.row.video_id for item in val_items],
    )

    def learn() -> dict[str, Any]:
        learnt, lines = learn_activity_codes(data, train_items, settings, config.seed)
        return {"autoencoder": learnt.state_dict(), "lines": lines}

    learnt = stage(run.checkpoint("autoencoder"), learn, resume=resume)
    model = build_activity_autoencoder(settings)
    model.load_state_dict(learnt["autoencoder"])
    model.eval()
    lines: list[dict[str, Any]] = learnt["lines"]

    started = time.perf_counter()

    def words() -> dict[str, Any]:
        rows = [descriptors(model, data, item, settings) for item in train_items]
        return {"vocabulary": torch.from_numpy(fit_vocabulary(rows, settings, config.seed))}

    vocabulary = stage(run.checkpoint("vocabulary"), words, resume=resume)["vocabulary"].numpy()
    splits = (train_items, val_items)
    head, line, val_outcome = _fit_svms(model, vocabulary, data, splits, settings, config.seed)
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
    if val_outcome is not None:
        write_evaluation(run.folder / "eval_val", val_outcome, classes)
    if test_items:
        test_x, _ = _histograms(model, vocabulary, data, test_items, settings)
        write_evaluation(run.folder / "eval_test", _outcome(head, test_x, test_items), classes)
    return lines


def load_activity_run(run: RunDir) -> tuple[SynchronyAutoEncoder, np.ndarray, Standardised]:
    """A trained run's auto-encoder, vocabulary ``(W, N)`` and SVMs (eval mode, on the CPU)."""
    settings = _settings(run.config())
    state = load_checkpoint(run.best_or_last())
    model = build_activity_autoencoder(settings)
    model.load_state_dict(state["autoencoder"])
    vocabulary = state["vocabulary"].numpy()
    head = svm_head(settings.classifier, len(vocabulary), len(run.classes()), state=state["model"])
    head.load_state_dict(state["model"])
    return model.eval(), vocabulary, head.eval()


def evaluate_activity_run(run: RunDir, split: str) -> EvalOutcome:
    """Score one split with a trained activity run.

    Raises:
        ConfigError: if the split has no usable video.
    """
    config = run.config()
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    items = data.split(split)
    if not items:
        raise ConfigError(f"{config.data.manifest}: no usable video in split {split!r}")
    model, vocabulary, head = load_activity_run(run)
    x, _ = _histograms(model, vocabulary, data, items, _settings(config))
    return _outcome(head, x, items)


@torch.no_grad()
def activity_timeline(
    model: SynchronyAutoEncoder,
    vocabulary: np.ndarray,
    head: Standardised,
    settings: ActivityConfig,
    pieces: Iterable[np.ndarray],
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-frame ``(L, K)`` and video ``(K,)`` class probabilities of a new video.

    The video's: the SVMs' score of its bag of words, as in evaluation. A frame's: their score
    of the bag of words of the blocks that overlap the ``max(TIMELINE_WINDOW, depth)`` frames
    centred on it (as the frame pipelines' SVMs score a window of frames), NaN when none of
    them moves. A video without a moving block has no score (None): a bag of words of nothing
    would be a made-up one.

    Only the codes of the moving grid blocks are held (:func:`stream_descriptors`).

    Args:
        model: The run's auto-encoder.
        vocabulary: The run's words ``(W, N)``.
        head: The run's standardised SVMs.
        settings: The run's ``activity`` section.
        pieces: The video's ``L`` frames ``(n, H, W, 3)`` in order, prepared as the run's
            videos were.

    Raises:
        ConfigError: if the video has fewer frames than a block.
    """
    found = stream_descriptors(model, pieces, settings)
    if not len(found.codes):
        return None
    video = head(torch.from_numpy(bag_of_words(found.codes, vocabulary))[None])  # (1, W) -> (1, K)
    counts = np.zeros((len(found.starts) + 1, len(vocabulary)))  # (S + 1, W)
    np.add.at(counts, (found.blocks + 1, nearest_words(found.codes, vocabulary)), 1.0)
    before = counts.cumsum(axis=0)  # (S + 1, W): the words of the blocks before each block
    half = max(TIMELINE_WINDOW, settings.depth) // 2
    # Frame t's window is frames [t - half, t + half); a block starting at s overlaps it when
    # t - half - depth < s < t + half: the blocks [first, last) in start order.
    frames = np.arange(found.frames)  # (L,)
    first = np.searchsorted(found.starts, frames - half - settings.depth, side="right")  # (L,)
    last = np.searchsorted(found.starts, frames + half, side="left")  # (L,)
    window = before[last] - before[first]  # (L, W)
    total = window.sum(axis=1)  # (L,)
    scored = total > 0
    bags = (window[scored] / total[scored, None]).astype(np.float32)  # (L', W)
    per_frame = np.full((found.frames, video.shape[1]), np.nan)  # (L, K)
    per_frame[scored] = head(torch.from_numpy(bags)).softmax(dim=1).numpy()  # -> (L', K)
    return per_frame, video.softmax(dim=1)[0].numpy()


class ActivityPipeline(FittedPipeline):
    """Kahou et al.'s activity modality: sparse codes, a bag of words, SVMs."""

    kind: RunKind = "activity"

    def fit(self, config: RunConfig, folder: Path, *, resume: bool) -> list[dict[str, Any]]:
        """Learn the codes, the vocabulary and the SVMs (a resumed run reads the stages it
        finished)."""
        return train_activity_pipeline(config, folder, resume=resume)

    def evaluate(self, run: RunDir, split: str) -> EvalOutcome:
        """The SVMs' video scores on one split."""
        return evaluate_activity_run(run, split)

    def scorer(
        self, run: RunDir, video: Path, settings: EvalConfig, device: torch.device
    ) -> Scorer:
        """The video's SVM scores; per frame, those of the blocks around it."""
        activity = _settings(run.config())
        model, vocabulary, head = load_activity_run(run)

        def score(pieces: Iterable[np.ndarray]) -> Scored:
            found = activity_timeline(model, vocabulary, head, activity, pieces)
            return Scored(None, None, "no_motion") if found is None else Scored(*found)

        return score

    def model_name(self, config: RunConfig) -> str:
        """The paper's system."""
        return "kahou2015_activity"

    def video_features(
        self, run: RunDir, data: PreparedDataset, device: torch.device
    ) -> dict[str, np.ndarray]:
        """None: fuse this kind's scores, not its features."""
        raise no_video_features("activity")
