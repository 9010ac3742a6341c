"""A clip model's initial weights (``model.weights``): a published name, a file, or a run.

``model.weights`` names one of:

- a torchvision weights entry of the family (e.g. ``KINETICS400_V1`` for ``resnet3d_18``,
  ``r2plus1d_18``, ``mc3_18``, ``s3d``, ``mvit_v2_s`` and ``swin3d_t``), read from torchvision's
  cache (``$TORCH_HOME/hub/checkpoints/``) through its own weights API, which downloads the file
  there when the machine is online (unless ``VIDFER_OFFLINE`` is set); offline with no cached file,
  one error names the file and folder;
- a checkpoint file: a state dict saved with ``torch.save``, optionally wrapped as
  ``{"state_dict": ...}`` and with ``torch.nn.DataParallel``'s ``module.`` prefix (the layout of
  3D-ResNets-PyTorch checkpoints), in the family's own parameter names;
- a vidfer run folder: the model of its best checkpoint (pretrain on one dataset, fine-tune on
  another).

Only the backbone is taken: the source's classifier (``fc.*``, ``head.*``, ``classifier.*``) is
dropped, the model keeps its new head for its own classes. Every other parameter and buffer must
match in name and shape; a mismatch names the missing and unexpected keys and the shapes that
differ.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.checkpoint import load_checkpoint, read_state_dict
from vidfer.io.run_folder import RunDir

TORCHVISION_WEIGHTS = {
    "resnet3d_18": "R3D_18_Weights",
    "r2plus1d_18": "R2Plus1D_18_Weights",
    "mc3_18": "MC3_18_Weights",
    "s3d": "S3D_Weights",
    "mvit_v2_s": "MViT_V2_S_Weights",
    "swin3d_t": "Swin3D_T_Weights",
}
"""The torchvision weights enum (in ``torchvision.models.video``) of each family that has one."""

CLASSIFIER_PREFIXES = ("fc.", "head.", "classifier.")
"""Keys of a source's classifier (``classifier.*`` is S3D's): never loaded into a backbone."""

KEYS_SHOWN = 5
"""How many offending keys a mismatch lists per kind."""


def key_problems(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> list[str]:
    """Human-readable differences between two state dicts (a few keys of each kind)."""
    problems = []
    missing = sorted(target.keys() - source.keys())
    unexpected = sorted(source.keys() - target.keys())
    mismatched = [
        f"{key} {tuple(source[key].shape)} vs {tuple(target[key].shape)}"
        for key in sorted(source.keys() & target.keys())
        if source[key].shape != target[key].shape
    ]
    for kind, keys in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched)):
        if keys:
            more = f" and {len(keys) - KEYS_SHOWN} more" if len(keys) > KEYS_SHOWN else ""
            problems.append(f"{kind}: {', '.join(keys[:KEYS_SHOWN])}{more}")
    return problems


def load_backbone(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, needs: str = ""
) -> None:
    """Load every backbone tensor of ``state`` into ``model``; the classifiers are left out.

    Args:
        model: The model to initialise.
        state: Parameter and buffer tensors by name.
        source: Where ``state`` came from, for error messages.
        needs: What the model needs to match, said in the error (e.g. ``width=1.0``).

    Raises:
        CheckpointError: if the keys or shapes do not match; the message lists a few.
    """
    wanted = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}
    target = {k: v for k, v in model.state_dict().items() if not k.startswith(CLASSIFIER_PREFIXES)}
    problems = key_problems(wanted, target)
    if problems:
        raise CheckpointError(
            f"weights {source} do not match this model's backbone{needs}: {'; '.join(problems)}"
        )
    # Not strict only because the head is absent from the source on purpose.
    model.load_state_dict(wanted, strict=False)


def _unwrapped(state: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    """A state dict out of its common wrappings (``state_dict`` key, ``module.`` prefix)."""
    inner = state.get("state_dict", state)
    if not isinstance(inner, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in inner.items()
    ):
        raise CheckpointError(
            f"{source}: not a state dict (a mapping of names to tensors, or one under "
            "'state_dict'); save one with torch.save(model.state_dict(), path)"
        )
    return {k.removeprefix("module."): v for k, v in inner.items()}


def _torchvision_file(model_name: str, name: str) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of a torchvision weights entry, from torchvision's cache or download."""
    enum_name = TORCHVISION_WEIGHTS.get(model_name)
    if enum_name is None:
        raise ConfigError(
            f"model.weights {name!r}: {model_name} has no published weights names; give a "
            f"checkpoint file or a vidfer run folder (published names exist for "
            f"{', '.join(sorted(TORCHVISION_WEIGHTS))})"
        )
    entries = getattr(importlib.import_module("torchvision.models.video"), enum_name)
    if name not in entries.__members__:
        raise ConfigError(
            f"model.weights {name!r}: not a weights name of {model_name}; known: "
            f"{', '.join(entries.__members__)} (or a checkpoint file or a run folder)"
        )
    entry = entries[name]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / os.path.basename(entry.url)
    if not file.is_file():
        if os.environ.get("VIDFER_OFFLINE"):
            raise CheckpointError(
                f"model.weights {name!r}: {file.name} is not in torchvision's cache {folder}; "
                "put the file there (or set TORCH_HOME to where it is), or unset "
                "VIDFER_OFFLINE to let torchvision download it"
            )
        try:
            entry.get_state_dict(progress=False, check_hash=True)  # downloads into the cache
        except Exception as exc:  # urllib, hash and disk errors all mean: not available
            raise CheckpointError(
                f"model.weights {name!r}: {file.name} is not in torchvision's cache {folder} "
                f"and could not be downloaded ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                "put the file there (or set TORCH_HOME to where it is)"
            ) from None
    return read_state_dict(file), f"{enum_name}.{name} ({file})"


def initial_state(spec: str, model_name: str) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict ``model.weights`` names, and a description of its source.

    Raises:
        ConfigError: on an unknown weights name.
        CheckpointError: if the file or run cannot be read (one line naming it).
    """
    path = Path(spec)
    if path.is_dir():
        run = RunDir(path)
        checkpoint = run.best_or_last() if run.config_path.exists() else None
        if checkpoint is None:
            raise CheckpointError(
                f"model.weights {spec}: a folder, but not a vidfer run folder (no config.yaml)"
            )
        return dict(load_checkpoint(checkpoint)["model"]), f"run {path} ({checkpoint.name})"
    if path.suffix in (".pt", ".pth", ".pkl", ".bin") or path.exists() or os.sep in spec:
        return _unwrapped(load_checkpoint(path), str(path)), str(path)
    return _torchvision_file(model_name, spec)
