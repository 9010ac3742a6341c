"""Checkpoints: tensors and plain values only, loadable with ``torch.load(weights_only=True)``.

A checkpoint is written atomically (temporary file, fsync, rename) with a JSON sidecar holding the
human-readable metadata; loading never unpickles code, so a crafted file cannot run anything.
A process killed while saving leaves the previous checkpoint whole (and at most a temporary file,
deleted by the next save); a full disk leaves it whole too and stops with a
:class:`vidfer.errors.StorageError`. The ``.pt`` file is the authority: its sidecar is replaced
second, so after a kill between the two it may describe the previous checkpoint.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from vidfer.errors import CheckpointError
from vidfer.io.atomic import atomic_write_json, atomic_write_with, remove_temporaries


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
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "refused"
        raise CheckpointError(
            f"{path}: refused to load: the file holds more than tensors and plain values ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: damaged checkpoint ({error})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a vidfer checkpoint (expected a dict of states)")
    return state
