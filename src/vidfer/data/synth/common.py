"""Shared parts of the synthetic datasets: the dataset writer and sub-pixel drawing helpers."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from vidfer.errors import ConfigError
from vidfer.io.atomic import atomic_write_text
from vidfer.io.writer import write_video

logger = logging.getLogger(__name__)

Video = npt.NDArray[np.uint8]  # (T, H, W, 3) RGB
FloatArray = npt.NDArray[np.float64]

# cv2 draws at 1/16 pixel precision with ``shift=4``; sub-pixel motion keeps small, slow
# movements smooth instead of jumping a whole pixel every few frames.
SHIFT = 4
ONE = 1 << SHIFT
AA = cv2.LINE_AA
INK = (30.0, 22.0, 20.0)


@dataclass(frozen=True)
class Sample:
    """One generated video before it is written."""

    subject: str
    split: str
    label: str
    frames: Video
    extra: dict[str, object] | None = None  # per-frame ground truth for ``intensity.jsonl``


# --------------------------------------------------------------------------------------------
# Shared plumbing: arguments, seeds, splits, files.


def check_args(videos_per_class: int, size: int, fps: float) -> None:
    if videos_per_class < 3:
        raise ConfigError(
            f"videos_per_class={videos_per_class}: at least 3 are needed, one subject per "
            "split (train/val/test) for every class; pass videos_per_class >= 3"
        )
    if size < 32 or size % 2:
        raise ConfigError(f"size={size}: use an even frame size of at least 32 pixels")
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps={fps}: use a positive frame rate")


def seed_tree(
    seed: int, n_subjects: int, n_classes: int
) -> tuple[list[str], list[list[np.random.SeedSequence]]]:
    """Split name per subject, and per subject ``[appearance seed, one seed per class]``.

    Every subject and video draws from its own child of one ``SeedSequence``: a video does not
    change when ``videos_per_class`` grows, and no global random state is touched. Whole
    subjects go to a split: about 20% val and 20% test (at least one each), the rest train.
    """
    split_seed, *subject_seeds = np.random.SeedSequence(seed).spawn(n_subjects + 1)
    n_held = max(1, round(0.2 * n_subjects))
    names = ["val"] * n_held + ["test"] * n_held + ["train"] * (n_subjects - 2 * n_held)
    splits = [names[i] for i in np.random.default_rng(split_seed).permutation(n_subjects)]
    return splits, [child.spawn(n_classes + 1) for child in subject_seeds]


def write_dataset(
    out_dir: str | os.PathLike[str],
    samples: Iterable[Sample],
    fps: float,
    extra_name: str | None = None,
    frame_labels: str | None = None,
) -> Path:
    """Write the videos, then the ground truth, then (last: it marks completion) the manifest.

    ``samples`` is consumed lazily, so that only one video is in memory at a time. With
    ``frame_labels``, that per-frame entry of each sample's ground truth is also written to
    ``labels/<video_id>.txt`` (one value per line), named in the manifest's ``frame_labels``.
    """
    root = Path(out_dir)
    manifest = root / "manifest.csv"
    # A manifest left by an earlier run must not vouch for a half-rewritten folder.
    manifest.unlink(missing_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "path",
            "label",
            "split",
            "subject",
            "video_id",
            *(["frame_labels"] if frame_labels else []),
        ]
    )
    extra_lines = []
    written = 0
    for sample in samples:
        video_id = f"{sample.subject}_{sample.label}"
        rel = f"videos/{sample.label}/{video_id}.mp4"
        # Lossless: libx264's lossy output is not always bit-reproducible across processes
        # (seen at 48x48 with crf 18), and a seed must always give the same pixels.
        write_video(root / rel, sample.frames, fps, crf=0)
        row = [rel, sample.label, sample.split, sample.subject, video_id]
        if frame_labels is not None:
            values = (sample.extra or {}).get(frame_labels)
            if not isinstance(values, list):
                raise ValueError(f"sample {video_id} has no per-frame {frame_labels!r} list")
            labels = f"labels/{video_id}.txt"
            atomic_write_text(root / labels, "".join(f"{v}\n" for v in values))
            row.append(labels)
        writer.writerow(row)
        written += 1
        if sample.extra is not None:
            extra_lines.append(json.dumps({"video_id": video_id, **sample.extra}))
    if extra_name is not None:
        atomic_write_text(root / extra_name, "\n".join(extra_lines) + "\n")
    atomic_write_text(manifest, buffer.getvalue())
    logger.info("wrote %d synthetic videos and %s", written, manifest)
    return manifest


def texture(rng: np.random.Generator, size: int, base: FloatArray, amplitude: float) -> FloatArray:
    """Smooth low-contrast noise around the colour ``base``: float (size, size, 3)."""
    noise = cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), sigmaX=size / 48)
    noise = noise / (noise.std() + 1e-6)
    # (H, W) -> (H, W, 1): one luminance pattern on all three channels.
    return base[None, None, :] + amplitude * noise[:, :, None]


def fix(value: float) -> int:
    """Coordinate in cv2's fixed-point units (see ``SHIFT``)."""
    return round(float(value) * ONE)  # float(): round() on numpy scalars is 5x slower


def pt(x: float, y: float) -> tuple[int, int]:
    return fix(x), fix(y)


def as_colour(rgb: FloatArray) -> tuple[float, float, float]:
    return float(rgb[0]), float(rgb[1]), float(rgb[2])


def ellipse(
    frame: Video,
    centre: tuple[float, float],
    axes: tuple[float, float],
    colour: tuple[float, float, float],
    thickness: int,
) -> None:
    """A full ellipse, filled when ``thickness`` is -1."""
    cv2.ellipse(frame, pt(*centre), pt(*axes), 0, 0, 360, colour, thickness, AA, SHIFT)
