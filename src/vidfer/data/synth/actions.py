"""The synthetic ``actions`` dataset: a stick figure whose classes differ only in motion.

With ``scenes=True`` the classes are instead motion x scene (``SCENE_ACTION_CLASSES``): a walk
or a jump, in front of a house ("town") or a tree ("park"). Neither a single frame (no motion)
nor the frame differences (the static scene cancels out) tell all four apart; both together do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidfer.data.synth.common import (
    AA,
    ONE,
    SHIFT,
    FloatArray,
    Sample,
    Video,
    as_colour,
    check_args,
    fix,
    pt,
    seed_tree,
    texture,
    write_dataset,
)

ACTION_CLASSES = ("walk_left", "walk_right", "run_right", "jump")
SCENE_ACTION_CLASSES = ("walk_town", "walk_park", "jump_town", "jump_park")

# --------------------------------------------------------------------------------------------
# Actions.


# Horizontal velocity in units of the (random) walking speed.
_VELOCITY = {"walk_left": -1.0, "walk_right": 1.0, "run_right": 3.0, "jump": 0.0}

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma weights of R, G, B
LUMA_MARGIN = 50.0
"""Least difference (of 255) between the gray levels of a figure and of its background, so that
the figure also stands out in gray (a saturated colour can have the luma of a gray)."""


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


def _render_action(
    rng: np.random.Generator, actor: _Actor, label: str, size: int, scene: str | None = None
) -> Video:
    """One action video. Only the motion depends on ``label``; ``scene`` adds a landmark.

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

    base = np.full(3, _background_level(rng, float(actor.colour @ _LUMA))) + rng.uniform(-10, 10, 3)
    ground = texture(rng, size, base, 8.0)
    if scene is not None:
        ground += _scene_pattern(rng, size, scene)[:, :, None]
    background = np.clip(ground, 0, 255).astype(np.uint8)
    if scene is not None:
        _draw_landmark(rng, background, scene, float(base.mean()))
    frames = np.empty((length, size, size, 3), dtype=np.uint8)
    for i in range(length):
        frame = background.copy()
        # Draw three copies one frame-width apart so that the figure wraps around the edges.
        for shift in (-size, 0, size):
            _draw_figure(frame, actor, x[i] % size + shift, feet - lift[i], angle[i])
        frames[i] = frame
    return frames


def _background_level(rng: np.random.Generator, figure_luma: float) -> float:
    """A background gray level, uniform over [60, 160] less ``LUMA_MARGIN`` around the figure's.

    The background must not take the figure's gray level: in gray (e.g. Baccouche et al.'s
    auto-encoder input) a figure of the background's luma is invisible.
    """
    segments = [(60.0, min(160.0, figure_luma - LUMA_MARGIN))]
    segments.append((max(60.0, figure_luma + LUMA_MARGIN), 160.0))
    segments = [(low, high) for low, high in segments if high >= low]
    draw = rng.uniform(0.0, sum(high - low for low, high in segments))
    for low, high in segments:
        if draw <= high - low:
            return low + draw
        draw -= high - low
    return segments[-1][1]


def _draw_figure(frame: Video, actor: _Actor, x: float, feet: float, angle: float) -> None:
    """Draw a stick figure standing on ``feet`` (y) at ``x``, limbs swung by ``angle``."""
    h, colour, width = actor.height, as_colour(actor.colour), actor.thickness
    leg, arm, torso, head = 0.45 * h, 0.3 * h, 0.3 * h, 0.12 * h
    hip_y = feet - leg
    neck_y = hip_y - torso
    for sign in (-1, 1):
        # Legs swing in opposition; each arm swings against the leg on its side.
        foot = pt(x + sign * leg * np.sin(angle), hip_y + leg * np.cos(angle))
        hand = pt(x - sign * arm * np.sin(0.8 * angle), neck_y + 0.05 * h + arm * np.cos(angle))
        cv2.line(frame, pt(x, hip_y), foot, colour, width, AA, SHIFT)
        cv2.line(frame, pt(x, neck_y + 0.05 * h), hand, colour, width, AA, SHIFT)
    cv2.line(frame, pt(x, hip_y), pt(x, neck_y), colour, width, AA, SHIFT)
    cv2.circle(frame, pt(x, neck_y - head), fix(head), colour, -1, AA, SHIFT)


def _scene_pattern(rng: np.random.Generator, size: int, scene: str) -> FloatArray:
    """A luminance pattern over the whole background, float (size, size), values 0 or +-18.

    ``town``: a brick wall (dark mortar lines, joints offset every other course); ``park``:
    scattered light and dark leaves. Static, so frame differences cancel it.
    """
    pattern = np.zeros((size, size))
    if scene == "town":
        course = rng.uniform(size / 10, size / 7)  # brick height
        brick = 2 * course  # brick length
        phase = rng.uniform(0, brick)
        for row, top in enumerate(np.arange(rng.uniform(0, course), size, course)):
            pattern[int(top)] = -18.0
            offset = phase + (row % 2) * brick / 2
            for joint in np.arange(offset % brick, size, brick):
                pattern[int(top) : int(top + course), int(joint)] = -18.0
        return pattern
    canvas = np.zeros((size, size), dtype=np.float32)
    for _ in range(int(size * size / 250)):
        centre = pt(*rng.uniform(0, size, 2))
        radius = fix(rng.uniform(size / 40, size / 16))
        cv2.circle(canvas, centre, radius, float(rng.choice([-18.0, 18.0])), -1, AA, SHIFT)
    return canvas.astype(np.float64)


def _draw_landmark(rng: np.random.Generator, frame: Video, scene: str, level: float) -> None:
    """A static house ("town") or tree ("park") in a random muted colour, near the centre.

    Both landmarks have the same colour distribution and about the same area, so only their
    shape tells the scene apart. Their brightness stays clear of the background ``level``.
    """
    size = frame.shape[0]
    value = rng.uniform(20, 40) if level > 110 else rng.uniform(220, 250)
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 110), value]]])
    colour = as_colour(cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(float))
    x, y = rng.uniform(0.35, 0.65, 2) * size  # landmark centre
    r = rng.uniform(0.14, 0.2) * size  # half its width
    if scene == "town":  # a square wall under a triangular roof
        top = y - 0.2 * r
        wall = np.array([[x - r, top], [x + r, top], [x + r, y + r], [x - r, y + r]])
        roof = np.array([[x - 1.2 * r, top], [x + 1.2 * r, top], [x, y - r]])
        for polygon in (wall, roof):
            cv2.fillPoly(frame, [np.round(polygon * ONE).astype(np.int32)], colour, AA, SHIFT)
    else:  # a round crown on a thin trunk
        trunk = np.array([[x - 0.15 * r, y], [x + 0.15 * r, y], [x + 0.15 * r, y + r],
                          [x - 0.15 * r, y + r]])  # fmt: skip
        cv2.fillPoly(frame, [np.round(trunk * ONE).astype(np.int32)], colour, AA, SHIFT)
        cv2.circle(frame, pt(x, y - 0.2 * r), fix(r), colour, -1, AA, SHIFT)


def make_actions(
    out_dir: str | os.PathLike[str],
    *,
    videos_per_class: int = 20,
    seed: int = 0,
    size: int = 64,
    fps: float = 25.0,
    scenes: bool = False,
) -> Path:
    """Write the synthetic action dataset.

    Classes ``walk_left`` and ``walk_right`` (steady drift at the same speed), ``run_right``
    (about 3x that speed) and ``jump`` (bouncing in place); 32-48 frames per video. The
    ``subject`` column is the actor: each actor (colour, size) performs every class. With
    ``scenes``, the classes are ``SCENE_ACTION_CLASSES``: ``walk_right`` or ``jump`` in front
    of a static house (``town``) or tree (``park``), so that appearance and motion are both
    needed (a model of either alone tops out at 0.5).

    Args:
        out_dir: Output folder (created if missing).
        videos_per_class: Videos per class, one per actor (>= 3).
        seed: Seed of every random choice.
        size: Frame height and width in pixels (even, >= 32).
        fps: Frame rate of the written videos.
        scenes: Motion x scene classes instead of motion-only ones.

    Returns:
        The path of ``manifest.csv``, written last (its presence means the dataset is
        complete). Files of the same names from an earlier run are replaced.

    Raises:
        ConfigError: An argument is out of range.
    """
    check_args(videos_per_class, size, fps)
    samples = _action_samples(seed, videos_per_class, size, scenes)
    return write_dataset(out_dir, samples, fps)


def _action_samples(seed: int, n_subjects: int, size: int, scenes: bool) -> Iterator[Sample]:
    classes = SCENE_ACTION_CLASSES if scenes else ACTION_CLASSES
    splits, seeds = seed_tree(seed, n_subjects, len(classes))
    for number, (split, (actor_seed, *video_seeds)) in enumerate(
        zip(splits, seeds, strict=True), start=1
    ):
        actor = _Actor.draw(np.random.default_rng(actor_seed), size)
        for label, video_seed in zip(classes, video_seeds, strict=True):
            rng = np.random.default_rng(video_seed)
            if scenes:
                motion, scene = label.split("_")
                motion = "walk_right" if motion == "walk" else motion
                frames = _render_action(rng, actor, motion, size, scene)
            else:
                frames = _render_action(rng, actor, label, size)
            yield Sample(f"a{number:02d}", split, label, frames)
