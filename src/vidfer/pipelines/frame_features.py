"""What a frame-feature pipeline's head sees of each video: its extractors' features, normalised.

:func:`load_video_features` gathers every usable video's cached extractions (frame CNN layers,
3D-run features, audio) and normalises them per extractor; :func:`new_video_features` does the
same for a new video file. Videos lacking a modality (no sound) are set apart with the reason,
and :func:`write_missing` lists them for fusion.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidfer.config import FramesConfig, LimitsConfig, RunConfig
from vidfer.data.prepared import PreparedDataset
from vidfer.errors import ConfigError
from vidfer.features.aggregate import concatenate, kbin_pool, mean_var, signed_sqrt_l2
from vidfer.features.audio import sandboxed_audio_features
from vidfer.features.extract import (
    extract_audio_features,
    extract_frame_features,
    frame_features,
    load_frame_source,
)
from vidfer.io.atomic import atomic_write_text
from vidfer.io.run_folder import RunDir
from vidfer.models.frame_heads import SVMS
from vidfer.models.trained import load_run_model
from vidfer.pipelines.video_attention import extract_run_features, run_feature_sequence

log = logging.getLogger(__name__)


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
            features, reasons = extract_audio_features(
                data, config.data.limits, config.data.workers
            )
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


def new_video_features(
    frames: FramesConfig,
    pieces: Iterable[np.ndarray],
    path: Path,
    limits: LimitsConfig,
    device: torch.device,
) -> tuple[VideoFeatures | None, str]:
    """The features of a new video (its file, its prepared frames piece by piece, each
    ``(n, H, W, 3)``), as in training, and ``ok``; or None and the reason a modality is missing
    (``no_audio``, ``corrupt_audio``, ...). The soundtrack is decoded in a sandboxed worker
    under ``limits``.

    Frame CNNs see one piece at a time (their features are per frame): memory holds a piece and
    the features. Only a clip run's backbone (``video_run``) needs the whole video, and only
    then are the pieces kept. The pieces are read to the end in every case.
    """
    sound = None
    if any(extractor.audio is not None for extractor in frames.extractors):
        sound = sandboxed_audio_features(path, limits)
        if sound.features is None:
            for _ in pieces:  # read to the end all the same: the caller's record needs it
                pass
            return None, sound.status
    cnns = {
        i: load_frame_source(extractor, device)
        for i, extractor in enumerate(frames.extractors)
        if extractor.audio is None and extractor.video_run is None
    }
    rows: dict[int, list[np.ndarray]] = {i: [] for i in cnns}
    held: list[np.ndarray] | None = (
        [] if any(e.video_run is not None for e in frames.extractors) else None
    )
    for piece in pieces:
        for i, source in cnns.items():
            extractor = frames.extractors[i]
            rows[i].append(frame_features(source, piece, extractor.spatial, extractor.batch_size))
        if held is not None:
            held.append(piece)
    raw = []
    for i, extractor in enumerate(frames.extractors):
        if sound is not None and extractor.audio is not None:
            assert sound.features is not None
            raw.append(sound.features[None])  # one step: (1, 1582)
        elif extractor.video_run is not None and held is not None:
            run = RunDir(extractor.video_run)
            model, _ = load_run_model(run, device)
            video = np.concatenate(held)  # (T, S, S, 3): the whole video, for the clip run
            sequence = run_feature_sequence(model, run.config(), video, device)
            raw.append(sequence.scores.float().cpu().numpy().T)  # (F, T') -> (T', F)
        else:
            raw.append(np.concatenate(rows[i]))  # pieces' (n, C) -> (T, C)
    return video_features(frames, "", -1, raw), "ok"
