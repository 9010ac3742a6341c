"""Synthetic video datasets, written as real mp4 files plus a manifest.

Two small datasets exercise the whole flow without downloads; each is designed so that only a
spatio-temporal model can solve it:

* ``expressions``: cartoon faces whose expression shows only in a short onset-apex-offset window
  at a random time; the rest of every video is the same neutral face. Per-frame ground truth
  (expression intensity, occlusion by a "hand") is saved in ``intensity.jsonl``.
* ``actions``: a stick figure on a textured background; the four classes differ only in how the
  figure moves. Its position, pose and appearance at any single frame follow the same
  distribution in every class, so a single-frame classifier stays at chance.

Layout: ``out_dir/videos/<label>/<video_id>.mp4`` and ``out_dir/manifest.csv`` (columns
``path,label,split,subject,video_id``). Every subject (face or actor) performs every class once,
and whole subjects are assigned to train/val/test (about 60/20/20), so the splits are
subject-disjoint and each holds every class. Output is a deterministic function of ``seed``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
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

EXPRESSION_CLASSES = ("angry", "happy", "sad", "surprise")
ACTION_CLASSES = ("walk_left", "walk_right", "run_right", "jump")

# cv2 draws at 1/16 pixel precision with ``shift=4``; sub-pixel motion keeps small, slow
# movements smooth instead of jumping a whole pixel every few frames.
_SHIFT = 4
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA
_INK = (30.0, 22.0, 20.0)


@dataclass(frozen=True)
class _Sample:
    """One generated video before it is written."""

    subject: str
    split: str
    label: str
    frames: Video
    extra: dict[str, object] | None = None  # per-frame ground truth for ``intensity.jsonl``


# --------------------------------------------------------------------------------------------
# Shared plumbing: arguments, seeds, splits, files.


def _check_args(videos_per_class: int, size: int, fps: float) -> None:
    if videos_per_class < 3:
        raise ConfigError(
            f"videos_per_class={videos_per_class}: at least 3 are needed, one subject per "
            "split (train/val/test) for every class; pass videos_per_class >= 3"
        )
    if size < 32 or size % 2:
        raise ConfigError(f"size={size}: use an even frame size of at least 32 pixels")
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps={fps}: use a positive frame rate")


def _seed_tree(
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


def _write_dataset(
    out_dir: str | os.PathLike[str],
    samples: Iterable[_Sample],
    fps: float,
    extra_name: str | None = None,
) -> Path:
    """Write the videos, then the ground truth, then (last: it marks completion) the manifest.

    ``samples`` is consumed lazily, so that only one video is in memory at a time.
    """
    root = Path(out_dir)
    manifest = root / "manifest.csv"
    # A manifest left by an earlier run must not vouch for a half-rewritten folder.
    manifest.unlink(missing_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "split", "subject", "video_id"])
    extra_lines = []
    written = 0
    for sample in samples:
        video_id = f"{sample.subject}_{sample.label}"
        rel = f"videos/{sample.label}/{video_id}.mp4"
        # Lossless: libx264's lossy output is not always bit-reproducible across processes
        # (seen at 48x48 with crf 18), and a seed must always give the same pixels.
        write_video(root / rel, sample.frames, fps, crf=0)
        writer.writerow([rel, sample.label, sample.split, sample.subject, video_id])
        written += 1
        if sample.extra is not None:
            extra_lines.append(json.dumps({"video_id": video_id, **sample.extra}))
    if extra_name is not None:
        atomic_write_text(root / extra_name, "\n".join(extra_lines) + "\n")
    atomic_write_text(manifest, buffer.getvalue())
    logger.info("wrote %d synthetic videos and %s", written, manifest)
    return manifest


def _texture(rng: np.random.Generator, size: int, base: FloatArray, amplitude: float) -> FloatArray:
    """Smooth low-contrast noise around the colour ``base``: float (size, size, 3)."""
    noise = cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), sigmaX=size / 48)
    noise = noise / (noise.std() + 1e-6)
    # (H, W) -> (H, W, 1): one luminance pattern on all three channels.
    return base[None, None, :] + amplitude * noise[:, :, None]


def _fix(value: float) -> int:
    """Coordinate in cv2's fixed-point units (see ``_SHIFT``)."""
    return round(float(value) * _ONE)  # float(): round() on numpy scalars is 5x slower


def _pt(x: float, y: float) -> tuple[int, int]:
    return _fix(x), _fix(y)


def _colour(rgb: FloatArray) -> tuple[float, float, float]:
    return float(rgb[0]), float(rgb[1]), float(rgb[2])


def _ellipse(
    frame: Video,
    centre: tuple[float, float],
    axes: tuple[float, float],
    colour: tuple[float, float, float],
    thickness: int,
) -> None:
    """A full ellipse, filled when ``thickness`` is -1."""
    cv2.ellipse(frame, _pt(*centre), _pt(*axes), 0, 0, 360, colour, thickness, _AA, _SHIFT)


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

    texture = 6.0 if face.textured else 0.0
    background = np.clip(_texture(rng, size, face.background, texture), 0, 255).astype(np.uint8)
    hand = np.full(3, rng.uniform(110, 190)) if rng.random() < 0.5 else _skin_tone(rng)
    hand_dx = rng.uniform(-0.2, 0.2) * face.ax
    frames = np.empty((length, size, size, 3), dtype=np.uint8)
    for i in range(length):
        frame = background.copy()
        _draw_face(frame, face, delta[i], eye_open[i], sway[i])
        if occluded[i]:
            centre = (face.cx + sway[i, 0] + hand_dx, face.cy + sway[i, 1] + face.mouth_dy)
            axes = (0.75 * face.ax, 0.4 * face.ay)
            _ellipse(frame, centre, axes, _colour(hand), -1)
            _ellipse(frame, centre, axes, _colour(0.6 * hand), 1)
        frames[i] = frame
    truth = {"intensity": [round(float(v), 6) for v in intensity], "occluded": occluded.tolist()}
    return frames, truth


def _draw_face(
    frame: Video, face: _Face, delta: FloatArray, eye_open: float, sway: FloatArray
) -> None:
    """Draw one face in place; ``delta`` is the expression's geometry change for this frame."""
    cx, cy = face.cx + sway[0], face.cy + sway[1]
    _ellipse(frame, (cx, cy), (face.ax, face.ay), _colour(face.skin), -1)
    _ellipse(frame, (cx, cy), (face.ax, face.ay), _colour(0.55 * face.skin), 1)
    eye_y = cy - face.eye_dy
    brow_y = eye_y - face.eye_r - face.brow_gap
    for side in (-1, 1):
        eye_x = cx + side * face.eye_dx
        _ellipse(frame, (eye_x, eye_y), (face.eye_r, max(face.eye_r * eye_open, 0.3)), _INK, -1)
        # Inner brow end towards the nose; "+" offsets raise, i.e. move up (smaller y).
        inner = _pt(eye_x - side * face.brow_len / 2, brow_y - delta[_BROW_INNER] * face.ay)
        outer = _pt(eye_x + side * face.brow_len / 2, brow_y - delta[_BROW_OUTER] * face.ay)
        cv2.line(frame, inner, outer, _INK, 1, _AA, _SHIFT)
    # Mouth: upper lip y = base - curve * (u^2 - 1/2) for u in [-1, 1] (corners lift for a
    # positive curve); the lower lip opens below it as a half ellipse.
    width = face.mouth_w * (1 + delta[_WIDTH])
    u = np.linspace(-1, 1, 11)
    x = cx + u * width / 2
    upper = cy + face.mouth_dy - delta[_CURVE] * face.ay * (u**2 - 0.5)
    lower = upper + delta[_OPEN] * face.ay * np.sqrt(1 - u**2)
    # (11,) x 2 -> (11, 2) points, fixed point for cv2.
    upper_pts = np.round(np.stack([x, upper], axis=1) * _ONE).astype(np.int32)
    lower_pts = np.round(np.stack([x, lower], axis=1) * _ONE).astype(np.int32)
    if delta[_OPEN] > 0.01:
        outline = np.concatenate([upper_pts, lower_pts[::-1]])
        cv2.fillPoly(frame, [outline], (70.0, 20.0, 25.0), _AA, _SHIFT)
        cv2.polylines(frame, [lower_pts], False, _INK, 1, _AA, _SHIFT)
    cv2.polylines(frame, [upper_pts], False, _INK, 1, _AA, _SHIFT)


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
    with one value per frame.

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
    _check_args(videos_per_class, size, fps)
    samples = _expression_samples(seed, videos_per_class, size)
    return _write_dataset(out_dir, samples, fps, "intensity.jsonl")


def _expression_samples(seed: int, n_subjects: int, size: int) -> Iterator[_Sample]:
    splits, seeds = _seed_tree(seed, n_subjects, len(EXPRESSION_CLASSES))
    for number, (split, (face_seed, *video_seeds)) in enumerate(
        zip(splits, seeds, strict=True), start=1
    ):
        face = _Face.draw(np.random.default_rng(face_seed), size)
        for label, video_seed in zip(EXPRESSION_CLASSES, video_seeds, strict=True):
            frames, truth = _render_face(np.random.default_rng(video_seed), face, label, size)
            yield _Sample(f"s{number:02d}", split, label, frames, truth)


# --------------------------------------------------------------------------------------------
# Actions.


# Horizontal velocity in units of the (random) walking speed.
_VELOCITY = {"walk_left": -1.0, "walk_right": 1.0, "run_right": 3.0, "jump": 0.0}


@dataclass(frozen=True)
class _Actor:
    """An actor's appearance, shared by all its videos; lengths in pixels."""

    colour: FloatArray
    height: float
    thickness: int
    swing: float  # limb swing amplitude in radians

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int) -> _Actor:
        # Saturated, fairly bright colours stand out from the grey backgrounds.
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(150, 255), rng.uniform(190, 255)]]])
        colour = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(float)
        height = rng.uniform(0.3, 0.42) * size
        return cls(colour, height, max(1, round(height / 8)), rng.uniform(0.35, 0.6))


def _render_action(rng: np.random.Generator, actor: _Actor, label: str, size: int) -> Video:
    """One action video. Only the motion depends on ``label``.

    At any single frame, every class has the same distribution of position (walkers wrap
    around horizontally and start anywhere; the jumper stands anywhere), height above the
    ground (walkers get a random constant lift with the jumper's distribution) and limb pose
    (random phase), so a single frame carries no class information.
    """
    length = int(rng.integers(32, 49))
    t = np.arange(length)
    hop = rng.uniform(0.12, 0.2) * size  # jump height
    feet = rng.uniform(actor.height + hop + 1, size - 2)  # ground line
    speed = rng.uniform(1.2, 1.8) * size / 64  # walking speed, pixels per frame
    x = rng.uniform(0, size) + t * speed * _VELOCITY[label]
    phase = rng.uniform(0, np.pi)
    if label == "jump":
        lift = hop * np.abs(np.sin(np.pi * t / rng.uniform(12, 18) + phase))
    else:
        lift = np.full(length, hop * abs(np.sin(phase)))
    # Limbs swing at a walking cadence; running doubles it.
    cadence = (2 if label == "run_right" else 1) * 2 * np.pi / rng.uniform(14, 22)
    angle = actor.swing * np.sin(cadence * t + rng.uniform(0, 2 * np.pi))

    base = np.full(3, rng.uniform(60, 160)) + rng.uniform(-10, 10, 3)
    background = np.clip(_texture(rng, size, base, 8.0), 0, 255).astype(np.uint8)
    frames = np.empty((length, size, size, 3), dtype=np.uint8)
    for i in range(length):
        frame = background.copy()
        # Draw three copies one frame-width apart so that the figure wraps around the edges.
        for shift in (-size, 0, size):
            _draw_figure(frame, actor, x[i] % size + shift, feet - lift[i], angle[i])
        frames[i] = frame
    return frames


def _draw_figure(frame: Video, actor: _Actor, x: float, feet: float, angle: float) -> None:
    """Draw a stick figure standing on ``feet`` (y) at ``x``, limbs swung by ``angle``."""
    h, colour, width = actor.height, _colour(actor.colour), actor.thickness
    leg, arm, torso, head = 0.45 * h, 0.3 * h, 0.3 * h, 0.12 * h
    hip_y = feet - leg
    neck_y = hip_y - torso
    for sign in (-1, 1):
        # Legs swing in opposition; each arm swings against the leg on its side.
        foot = _pt(x + sign * leg * np.sin(angle), hip_y + leg * np.cos(angle))
        hand = _pt(x - sign * arm * np.sin(0.8 * angle), neck_y + 0.05 * h + arm * np.cos(angle))
        cv2.line(frame, _pt(x, hip_y), foot, colour, width, _AA, _SHIFT)
        cv2.line(frame, _pt(x, neck_y + 0.05 * h), hand, colour, width, _AA, _SHIFT)
    cv2.line(frame, _pt(x, hip_y), _pt(x, neck_y), colour, width, _AA, _SHIFT)
    cv2.circle(frame, _pt(x, neck_y - head), _fix(head), colour, -1, _AA, _SHIFT)


def make_actions(
    out_dir: str | os.PathLike[str],
    *,
    videos_per_class: int = 20,
    seed: int = 0,
    size: int = 64,
    fps: float = 25.0,
) -> Path:
    """Write the synthetic action dataset.

    Classes ``walk_left`` and ``walk_right`` (steady drift at the same speed), ``run_right``
    (about 3x that speed) and ``jump`` (bouncing in place); 32-48 frames per video. The
    ``subject`` column is the actor: each actor (colour, size) performs every class.

    Args:
        out_dir: Output folder (created if missing).
        videos_per_class: Videos per class, one per actor (>= 3).
        seed: Seed of every random choice.
        size: Frame height and width in pixels (even, >= 32).
        fps: Frame rate of the written videos.

    Returns:
        The path of ``manifest.csv``, written last (its presence means the dataset is
        complete). Files of the same names from an earlier run are replaced.

    Raises:
        ConfigError: An argument is out of range.
    """
    _check_args(videos_per_class, size, fps)
    return _write_dataset(out_dir, _action_samples(seed, videos_per_class, size), fps)


def _action_samples(seed: int, n_subjects: int, size: int) -> Iterator[_Sample]:
    splits, seeds = _seed_tree(seed, n_subjects, len(ACTION_CLASSES))
    for number, (split, (actor_seed, *video_seeds)) in enumerate(
        zip(splits, seeds, strict=True), start=1
    ):
        actor = _Actor.draw(np.random.default_rng(actor_seed), size)
        for label, video_seed in zip(ACTION_CLASSES, video_seeds, strict=True):
            frames = _render_action(np.random.default_rng(video_seed), actor, label, size)
            yield _Sample(f"a{number:02d}", split, label, frames)


SYNTH_DATASETS: dict[str, Callable[..., Path]] = {
    "expressions": make_expressions,
    "actions": make_actions,
}
"""Dataset name -> generator; each takes ``(out_dir, *, videos_per_class, seed, size, fps)``."""
