"""Frame runs (``vidfer train-frames`` folders) read back: their settings and trained model.

A frame run is read by the models that start from one (FstCN's spatial layers), by the feature
extractors and by ``train-frames --init RUN``; it is written by :mod:`vidfer.training.frames`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidfer.device import resolve_device
from vidfer.errors import CheckpointError
from vidfer.io.checkpoint import load_checkpoint
from vidfer.models.frame_cnns import FrameCNN, build_frame_cnn

RUN_KIND = "frame_cnn"
"""The ``kind`` of a frame run's settings.json."""


def read_frame_settings(folder: Path) -> dict[str, Any]:
    """The settings.json of a frame run.

    Raises:
        CheckpointError: if the folder is not a frame run.
    """
    path = folder / "settings.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        settings = None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: unreadable settings ({error})") from None
    if not isinstance(settings, dict) or settings.get("kind") != RUN_KIND:
        raise CheckpointError(
            f"{folder}: not a frame run (no settings.json of 'vidfer train-frames'); pass the "
            "--out folder of a train-frames run"
        )
    return settings


def _architecture(name: str, params: dict[str, Any], num_classes: int) -> FrameCNN:
    """The architecture of a saved run; its weights come from the checkpoint."""
    return build_frame_cnn(name, num_classes, **{k: v for k, v in params.items() if k != "weights"})


def frame_run_checkpoint(folder: str | Path) -> Path:
    """The checkpoint a frame run is used from: the best one, else the last (may not exist)."""
    best = Path(folder) / "checkpoints" / "best.pt"
    return best if best.exists() else best.with_name("last.pt")


def load_frame_run(folder: str | Path, device: str = "cpu") -> tuple[FrameCNN, list[str]]:
    """The trained model of a frame run (best checkpoint, else last) in eval mode, and its classes.

    Raises:
        CheckpointError: if the folder is not a frame run, has no checkpoint, or the checkpoint
            does not fit the model.
    """
    folder = Path(folder)
    settings = read_frame_settings(folder)
    classes = json.loads((folder / "classes.json").read_text(encoding="utf-8"))
    model = _architecture(settings["model"], settings["params"], len(classes))
    path = frame_run_checkpoint(folder)
    if not path.exists():
        raise CheckpointError(f"{folder}: no checkpoint in checkpoints/ (did training start?)")
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: does not fit {settings['model']} ({first})") from None
    return model.to(resolve_device(device)).eval(), list(classes)
