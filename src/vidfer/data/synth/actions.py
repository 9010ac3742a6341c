"""The synthetic ``actions`` dataset: a stick figure whose classes differ only in motion."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidfer.data.synth.common import (
    AA,
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
    background = np.clip(texture(rng, size, base, 8.0), 0, 255).astype(np.uint8)
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
    check_args(videos_per_class, size, fps)
    return write_dataset(out_dir, _action_samples(seed, videos_per_class, size), fps)


def _action_samples(seed: int, n_subjects: int, size: int) -> Iterator[Sample]:
    splits, seeds = seed_tree(seed, n_subjects, len(ACTION_CLASSES))
    for number, (split, (actor_seed, *video_seeds)) in enumerate(
        zip(splits, seeds, strict=True), start=1
    ):
        actor = _Actor.draw(np.random.default_rng(actor_seed), size)
        for label, video_seed in zip(ACTION_CLASSES, video_seeds, strict=True):
            frames = _render_action(np.random.default_rng(video_seed), actor, label, size)
            yield Sample(f"a{number:02d}", split, label, frames)
