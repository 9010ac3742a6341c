"""Synthetic video datasets, written as real mp4 files plus a manifest.

Two small datasets exercise the whole flow without downloads; each is designed so that only a
spatio-temporal model can solve it:

* ``expressions``: cartoon faces whose expression shows only in a short onset-apex-offset window
  at a random time; the rest of every video is the same neutral face. Per-frame ground truth
  (expression intensity, occlusion by a "hand") is saved in ``intensity.jsonl``.
* ``actions``: a stick figure on a textured background; the four classes differ only in how the
  figure moves. Its position, pose and appearance at any single frame follow the same
  distribution in every class, so a single-frame classifier stays at chance. Its ``scenes``
  variant (``SCENE_ACTION_CLASSES``: walk or jump x house or tree) needs appearance and motion.

Layout: ``out_dir/videos/<label>/<video_id>.mp4`` and ``out_dir/manifest.csv`` (columns
``path,label,split,subject,video_id``). Every subject (face or actor) performs every class once,
and whole subjects are assigned to train/val/test (about 60/20/20), so the splits are
subject-disjoint and each holds every class. Output is a deterministic function of ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vidfer.data.synth.actions import ACTION_CLASSES, SCENE_ACTION_CLASSES, make_actions
from vidfer.data.synth.expressions import EXPRESSION_CLASSES, make_expressions

__all__ = [
    "ACTION_CLASSES",
    "EXPRESSION_CLASSES",
    "SCENE_ACTION_CLASSES",
    "SYNTH_DATASETS",
    "make_actions",
    "make_expressions",
]


SYNTH_DATASETS: dict[str, Callable[..., Path]] = {
    "expressions": make_expressions,
    "actions": make_actions,
}
"""Dataset name -> generator; each takes ``(out_dir, *, videos_per_class, seed, size, fps)``.

``make_actions`` also takes ``scenes``."""
