"""Checkpoints and weight files: tensors and plain values only, read with ``weights_only=True``.

A checkpoint is written atomically (temporary file, fsync, rename) with a JSON sidecar holding the
human-readable metadata; loading never unpickles code, so a crafted file cannot run anything.
A process killed while saving leaves the previous checkpoint whole (and at most a temporary file,
deleted by the next save); a full disk leaves it whole too and stops with a
:class:`vidfer.errors.StorageError`. The ``.pt`` file is the authority: its sidecar is replaced
second, so after a kill between the two it may describe the previous checkpoint.

Every file the package reads with ``torch.load`` is read here: run checkpoints
(:func:`load_checkpoint`) and state-dict weight files (:func:`read_state_dict`: pretrained
backbones, frame CNN weights, the MTCNN assets).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vidfer.errors import CheckpointError, VidferError
from vidfer.io.atomic import atomic_write_json, atomic_write_with, remove_temporaries

# How a weight file's error says to fix it.
_WEIGHTS_FIX = "; give a file saved with torch.save(model.state_dict(), path)"


def save_checkpoint(path: Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) and its JSON ``meta``.

    The tensor file is replaced first and the sidecar second; both are atomic. Temporary files
    of earlier saves that were killed are deleted first (one process saves a run's checkpoints).

    Raises:
        StorageError: when the disk is full (the previous checkpoint is kept).
    """
    sidecar = path.with_suffix(".json")
    for name in (path.name, sidecar.name):
        remove_temporaries(path.parent, name)
    atomic_write_with(path, lambda handle: torch.save(state, handle))
    atomic_write_json(sidecar, meta)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely on the CPU.

    Raises:
        CheckpointError: if the file is missing, damaged, or holds anything but data.
    """
    state = _safe_load(path, kind="checkpoint", error=CheckpointError)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a vidfer checkpoint (expected a dict of states)")
    return state


def read_state_dict(
    path: str | os.PathLike[str], *, error: type[VidferError] = CheckpointError
) -> dict[str, torch.Tensor]:
    """Read a weight file saved with ``torch.save(model.state_dict(), path)``, safely, on the CPU.

    Args:
        path: The weight file.
        error: The exception raised on a bad file (a caller that reads a user's config option
            raises a ``ConfigError``).

    Raises:
        CheckpointError: (or ``error``) in one line naming the file and the fix, if the file is
            missing, damaged, holds anything but data, or is not a mapping of names to tensors.
    """
    file = Path(path)
    state = _safe_load(file, kind="weights file", error=error, fix=_WEIGHTS_FIX)
    if not isinstance(state, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise error(f"{file}: not a state dict (a mapping of names to tensors){_WEIGHTS_FIX}")
    return dict(state)


def _safe_load(path: Path, *, kind: str, error: type[VidferError], fix: str = "") -> object:
    """``torch.load(weights_only=True)`` on the CPU; one-line ``error``s naming ``path``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise error(f"{path}: {kind} not found{fix}") from None
    except pickle.UnpicklingError as exc:
        raise error(
            f"{path}: refused to load: the file holds more than tensors and plain values "
            f"({_first_line(exc, 'refused')}){fix}"
        ) from None
    # A damaged file raises many types (RuntimeError, EOFError, OSError, ValueError, TypeError...).
    except Exception as exc:
        raise error(f"{path}: damaged {kind} ({_first_line(exc, 'empty file')}){fix}") from None


def _first_line(exc: BaseException, default: str) -> str:
    """The first line of an exception's message (``default`` when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else default
