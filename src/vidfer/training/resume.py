"""Exact resume: where a run stands inside an epoch, the state of every random generator, and
the settings a resumed run must share with the run it continues.

A checkpoint taken between two optimiser steps holds, besides the weights, the optimiser and the
sampler, an :class:`EpochProgress` (batches of the current epoch already trained and the running
sums of its metrics) and :func:`capture_rng`'s states. Resuming skips the trained batches of the
epoch's order (each item's draws depend only on ``(seed, epoch, index)``), restores the generators
and goes on, so that a run killed at any step ends bit-identical to an uninterrupted one.

Loader workers need nothing saved: the loader of an epoch is seeded from ``(seed, epoch)``, so a
resumed epoch's workers get the seeds the uninterrupted run's workers got.

Everything is tensors and plain values, so checkpoints still load with ``weights_only=True``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.atomic import atomic_write_json
from vidfer.io.checkpoint import load_checkpoint, save_checkpoint


@dataclass
class EpochProgress:
    """How far the current epoch went.

    Attributes:
        batches: Batches of the epoch already trained (skipped batches included).
        loss_sum: Sum over the trained videos of their loss.
        correct: Trained videos whose clip scores picked their class.
        seen: Trained videos.
        skipped: Batches skipped because their loss was not finite (``train.on_nan: skip``).
    """

    batches: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    skipped: int = 0

    def metrics(self) -> dict[str, float]:
        """The epoch's training metrics (plus ``skipped_batches`` when some were skipped)."""
        out = {
            "train_loss": self.loss_sum / max(self.seen, 1),
            "train_accuracy": self.correct / max(self.seen, 1),
        }
        if self.skipped:
            out["skipped_batches"] = self.skipped
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpochProgress:
        """Inverse of :meth:`state_dict`."""
        return cls(**state)


def capture_rng() -> dict[str, Any]:
    """The global generators' states of Python, numpy and torch (CPU and every CUDA device).

    Python's Mersenne Twister state (625 words below 2**32) and numpy's (624 words) are stored as
    int64 tensors; the rest are numbers.
    """
    version, words, gauss = random.getstate()
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    kind, keys, position, has_gauss, cached = legacy
    return {
        "python": {
            "version": version,
            "state": torch.tensor(words, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Set the global generators to a :func:`capture_rng` state."""
    python = state["python"]
    random.setstate(
        (int(python["version"]), tuple(int(w) for w in python["state"].tolist()), python["gauss"])
    )
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def record_settings(folder: Path, settings: dict[str, Any], *, resume: bool) -> bool:
    """Write ``folder/settings.json`` for a new run, or check it against a resumed run's.

    Args:
        folder: The run folder (created if missing).
        settings: Everything that decides the run (JSON values).
        resume: Continue the run of ``folder``: it must have been started with the same
            settings.

    Returns:
        Whether training continues from ``checkpoints/last.pt`` (a resumed run killed before
        its first ``last.pt`` starts training again).

    Raises:
        ConfigError: on a new run into a folder that holds a checkpoint, or a resumed run whose
            settings differ (naming the options that differ).
        CheckpointError: if ``resume`` finds no run in ``folder``.
    """
    path, last = folder / "settings.json", folder / "checkpoints" / "last.pt"
    if not resume:
        if last.exists():  # a run killed before its first checkpoint is simply started again
            raise ConfigError(
                f"{folder}: already holds a run; pass --resume to continue it or choose another "
                "--out folder"
            )
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, settings)
        return False
    if not path.exists():
        raise CheckpointError(f"{folder}: nothing to resume (no settings.json: no run started)")
    recorded = json.loads(path.read_text(encoding="utf-8"))
    wanted = json.loads(json.dumps(settings))  # tuples as lists, keys as strings
    differ = sorted(k for k in recorded.keys() | wanted.keys() if recorded.get(k) != wanted.get(k))
    if differ:
        raise ConfigError(
            f"{path}: the run was made with other settings ({', '.join(differ)} differ); "
            "resume with the run's own settings or start a new run with another --out"
        )
    return last.exists()


def stage(path: Path, run_stage: Callable[[], dict[str, Any]], *, resume: bool) -> dict[str, Any]:
    """The state of one stage of a pipeline, computed once and kept in the checkpoint ``path``.

    A resumed run that had finished the stage reads its state back and restores the random
    generators as they were at the stage's end, so that the later stages draw what an
    uninterrupted run's draw; otherwise ``run_stage`` computes it and it is saved atomically.

    Args:
        path: The stage's checkpoint (e.g. ``RUN/checkpoints/autoencoder.pt``).
        run_stage: Computes the stage's state (tensors and plain values).
        resume: Read ``path`` when it exists.

    Returns:
        The stage's state.
    """
    if resume and path.exists():
        state = load_checkpoint(path)
        restore_rng(state.pop("rng"))
        return state
    state = run_stage()
    save_checkpoint(path, {**state, "rng": capture_rng()}, {"stage": path.stem})
    return state
