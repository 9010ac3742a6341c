"""The synthetic ``expressions`` dataset: cartoon faces with one onset-apex-offset expression."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from vidfer.data.synth.common import (
    AA,
    INK,
    ONE,
    SHIFT,
    FloatArray,
    Sample,
    Video,
    as_colour,
    check_args,
    ellipse,
    pt,
    seed_tree,
    texture,
    write_dataset,
)

EXPRESSION_CLASSES = ("angry", "happy", "sad", "surprise")

# --------------------------------------------------------------------------------------------
# Expressions.

# Change from the neutral face at full intensity. Brow and mouth offsets are in units of the
# head's vertical semi-axis (brows: + raises; mouth curve: + lifts the corners; mouth open:
# height of the opening); mouth width and eye opening are relative changes.
_BROW_INNER, _BROW_OUTER, _CURVE, _WIDTH, _OPEN, _EYE = range(6)
_EXPRESSIONS = np.array(
    [
        [-0.12, 0.04, -0.03, -0.35, 0.00, -0.35],  # angry: brows down to the centre, tight mouth
        [0.02, 0.02, 0.20, 0.30, 0.00, -0.25],  # happy: corners up, cheeks squint the eyes
        [0.10, -0.04, -0.14, -0.10, 0.00, -0.15],  # sad: corners down, brows up at the centre
        [0.13, 0.13, 0.00, -0.45, 0.28, 0.55],  # surprise: brows up, round open mouth
    ]
)


@dataclass(frozen=True)
class _Face:
    """A subject's appearance; lengths in pixels."""

    skin: FloatArray
    background: FloatArray
    textured: bool
    cx: float
    cy: float
    ax: float  # head semi-axes
    ay: float
    eye_dx: float  # half the distance between the eyes
    eye_dy: float  # eyes above the centre
    eye_r: float
    brow_len: float
    brow_gap: float  # brow above the eye
    mouth_dy: float  # mouth below the centre
    mouth_w: float
    strength: float  # how strongly this subject expresses (geometry, not ground truth)

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int) -> _Face:
        skin = _skin_tone(rng)
        ax = rng.uniform(0.25, 0.31) * size
        ay = min(ax * rng.uniform(1.15, 1.35), 0.44 * size)
        return cls(
            skin=skin,
            background=rng.uniform(25, 235, 3),
            textured=bool(rng.random() < 0.5),
            cx=size / 2 + rng.uniform(-0.03, 0.03) * size,
            cy=size / 2 + rng.uniform(-0.02, 0.04) * size,
            ax=ax,
            ay=ay,
            eye_dx=rng.uniform(0.36, 0.46) * ax,
            eye_dy=rng.uniform(0.15, 0.25) * ay,
            eye_r=rng.uniform(0.09, 0.12) * ax,
            brow_len=rng.uniform(0.28, 0.38) * ax,
            brow_gap=rng.uniform(0.14, 0.2) * ay,
            mouth_dy=rng.uniform(0.45, 0.55) * ay,
            mouth_w=rng.uniform(0.45, 0.6) * ax,
            strength=rng.uniform(0.8, 1.2),
        )


def _skin_tone(rng: np.random.Generator) -> FloatArray:
    light, dark = np.array([236.0, 200.0, 172.0]), np.array([112.0, 74.0, 52.0])
    return light + rng.uniform(0, 1) * (dark - light) + rng.uniform(-8, 8, 3)


def _expression_intensity(rng: np.random.Generator, length: int) -> FloatArray:
    """Per-frame intensity: 0, linear onset, apex plateau at 1, linear offset, 0.

    The apex holds 15-25% of the frames, onset and offset about 10% each, at a random time.
    """
    apex = round(rng.uniform(0.15, 0.25) * length)
    apex = min(max(apex, math.ceil(0.15 * length)), math.floor(0.25 * length))
    onset, offset = (max(1, round(rng.uniform(0.08, 0.12) * length)) for _ in range(2))
    start = int(rng.integers(0, length - (onset + apex + offset) + 1))
    intensity = np.zeros(length)
    # Ramps stop short of 0 and 1 so that only the plateau frames are exactly at the apex.
    ramp_up = np.arange(1, onset + 1) / (onset + 1)
    ramp_down = np.arange(offset, 0, -1) / (offset + 1)
    window = np.concatenate([ramp_up, np.ones(apex), ramp_down])
    intensity[start : start + window.size] = window
    return intensity


def _stretch(
    rng: np.random.Generator, length: int, low: float, high: float
) -> npt.NDArray[np.bool_]:
    """A random run of ``low``-``high`` of the frames, as a boolean mask."""
    run = max(1, round(rng.uniform(low, high) * length))
    start = int(rng.integers(0, length - run + 1))
    mask = np.zeros(length, dtype=bool)
    mask[start : start + run] = True
    return mask


def _blinks(rng: np.random.Generator, length: int) -> FloatArray:
    """Eye-opening factor per frame with 1-3 blinks of three frames each."""
    factor = np.ones(length)
    for start in rng.integers(0, length - 3, size=int(rng.integers(1, 4))):
        factor[start : start + 3] = np.minimum(factor[start : start + 3], [0.45, 0.08, 0.45])
    return factor


def _render_face(
    rng: np.random.Generator, face: _Face, label: str, size: int
) -> tuple[Video, dict[str, object]]:
    """One expression video and its per-frame ground truth."""
    length = int(rng.integers(48, 97))
    intensity = _expression_intensity(rng, length)
    occluded = _stretch(rng, length, 0.10, 0.20) if rng.random() < 0.5 else np.zeros(length, bool)
    # (T, 1) * (1, 6) -> (T, 6): geometry change per frame, interpolated by the intensity.
    delta = intensity[:, None] * (face.strength * _EXPRESSIONS[EXPRESSION_CLASSES.index(label)])
    eye_open = (1 + delta[:, _EYE]) * _blinks(rng, length)
    # Small head sway: a slow sinusoid per axis with a random phase.
    period, phase = rng.uniform(40, 90), rng.uniform(0, 2 * np.pi, 2)
    amplitude = rng.uniform(0.5, 1.5) * size / 64
    t = 2 * np.pi * np.arange(length) / period
    sway = amplitude * np.stack([np.sin(t + phase[0]), 0.5 * np.sin(t + phase[1])], axis=1)

    grain = 6.0 if face.textured else 0.0
    background = np.clip(texture(rng, size, face.background, grain), 0, 255).astype(np.uint8)
    hand = np.full(3, rng.uniform(110, 190)) if rng.random() < 0.5 else _skin_tone(rng)
    hand_dx = rng.uniform(-0.2, 0.2) * face.ax
    frames = np.empty((length, size, size, 3), dtype=np.uint8)
    for i in range(length):
        frame = background.copy()
        _draw_face(frame, face, delta[i], eye_open[i], sway[i])
        if occluded[i]:
            centre = (face.cx + sway[i, 0] + hand_dx, face.cy + sway[i, 1] + face.mouth_dy)
            axes = (0.75 * face.ax, 0.4 * face.ay)
            ellipse(frame, centre, axes, as_colour(hand), -1)
            ellipse(frame, centre, axes, as_colour(0.6 * hand), 1)
        frames[i] = frame
    truth = {"intensity": [round(float(v), 6) for v in intensity], "occluded": occluded.tolist()}
    return frames, truth


def _draw_face(
    frame: Video, face: _Face, delta: FloatArray, eye_open: float, sway: FloatArray
) -> None:
    """Draw one face in place; ``delta`` is the expression's geometry change for this frame."""
    cx, cy = face.cx + sway[0], face.cy + sway[1]
    ellipse(frame, (cx, cy), (face.ax, face.ay), as_colour(face.skin), -1)
    ellipse(frame, (cx, cy), (face.ax, face.ay), as_colour(0.55 * face.skin), 1)
    eye_y = cy - face.eye_dy
    brow_y = eye_y - face.eye_r - face.brow_gap
    for side in (-1, 1):
        eye_x = cx + side * face.eye_dx
        ellipse(frame, (eye_x, eye_y), (face.eye_r, max(face.eye_r * eye_open, 0.3)), INK, -1)
        # Inner brow end towards the nose; "+" offsets raise, i.e. move up (smaller y).
        inner = pt(eye_x - side * face.brow_len / 2, brow_y - delta[_BROW_INNER] * face.ay)
        outer = pt(eye_x + side * face.brow_len / 2, brow_y - delta[_BROW_OUTER] * face.ay)
        cv2.line(frame, inner, outer, INK, 1, AA, SHIFT)
    # Mouth: upper lip y = base - curve * (u^2 - 1/2) for u in [-1, 1] (corners lift for a
    # positive curve); the lower lip opens below it as a half ellipse.
    width = face.mouth_w * (1 + delta[_WIDTH])
    u = np.linspace(-1, 1, 11)
    x = cx + u * width / 2
    upper = cy + face.mouth_dy - delta[_CURVE] * face.ay * (u**2 - 0.5)
    lower = upper + delta[_OPEN] * face.ay * np.sqrt(1 - u**2)
    # (11,) x 2 -> (11, 2) points, fixed point for cv2.
    upper_pts = np.round(np.stack([x, upper], axis=1) * ONE).astype(np.int32)
    lower_pts = np.round(np.stack([x, lower], axis=1) * ONE).astype(np.int32)
    if delta[_OPEN] > 0.01:
        outline = np.concatenate([upper_pts, lower_pts[::-1]])
        cv2.fillPoly(frame, [outline], (70.0, 20.0, 25.0), AA, SHIFT)
        cv2.polylines(frame, [lower_pts], False, INK, 1, AA, SHIFT)
    cv2.polylines(frame, [upper_pts], False, INK, 1, AA, SHIFT)


def make_expressions(
    out_dir: str | os.PathLike[str],
    *,
    videos_per_class: int = 12,
    seed: int = 0,
    size: int = 64,
    fps: float = 25.0,
) -> Path:
    """Write the synthetic facial-expression dataset.

    Classes ``angry``, ``happy``, ``sad``, ``surprise``; 48-96 frames per video, of which the
    expression occupies one onset-apex-offset window (apex 15-25% of the frames); about half
    of the videos have the lower face covered by a "hand" for 10-20% of the frames.
    ``out_dir/intensity.jsonl`` holds, per video, ``{"video_id", "intensity", "occluded"}``
    with one value per frame; the intensity is also each video's ``frame_labels`` file
    (``labels/<video_id>.txt``, named in the manifest) for guided sampling.

    Args:
        out_dir: Output folder (created if missing).
        videos_per_class: Videos per class, one per subject (>= 3).
        seed: Seed of every random choice.
        size: Frame height and width in pixels (even, >= 32).
        fps: Frame rate of the written videos.

    Returns:
        The path of ``manifest.csv``, written last (its presence means the dataset is
        complete). Files of the same names from an earlier run are replaced.

    Raises:
        ConfigError: An argument is out of range.
    """
    check_args(videos_per_class, size, fps)
    samples = _expression_samples(seed, videos_per_class, size)
    return write_dataset(out_dir, samples, fps, "intensity.jsonl", frame_labels="intensity")


def _expression_samples(seed: int, n_subjects: int, size: int) -> Iterator[Sample]:
    splits, seeds = seed_tree(seed, n_subjects, len(EXPRESSION_CLASSES))
    for number, (split, (face_seed, *video_seeds)) in enumerate(
        zip(splits, seeds, strict=True), start=1
    ):
        face = _Face.draw(np.random.default_rng(face_seed), size)
        for label, video_seed in zip(EXPRESSION_CLASSES, video_seeds, strict=True):
            frames, truth = _render_face(np.random.default_rng(video_seed), face, label, size)
            yield Sample(f"s{number:02d}", split, label, frames, truth)
