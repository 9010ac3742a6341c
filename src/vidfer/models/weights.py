"""A clip model's initial weights (``model.weights``): a published name, a file, or a run.

``model.weights`` names one of:

- a torchvision weights entry of the family (e.g. ``KINETICS400_V1`` for ``resnet3d_18``,
  ``r2plus1d_18``, ``mc3_18``, ``s3d``, ``mvit_v2_s`` and ``swin3d_t``), read from torchvision's
  cache (``$TORCH_HOME/hub/checkpoints/``) through its own weights API, which downloads the file
  there when the machine is online (unless ``VIDFER_OFFLINE`` is set); offline with no cached file,
  one error names the file and folder;
- a checkpoint file: a state dict saved with ``torch.save``, optionally wrapped as
  ``{"state_dict": ...}`` and with ``torch.nn.DataParallel``'s ``module.`` prefix (the layout of
  3D-ResNets-PyTorch checkpoints), in the family's own parameter names or in a published layout
  that :mod:`vidfer.models.published` reads into them (Hara's resnext-101, the C3D Sports-1M
  ports);
- a vidfer run folder: the model of its best checkpoint (pretrain on one dataset, fine-tune on
  another);
- for a family whose weights describe themselves (:data:`DESCRIBING`: Hugging Face's VideoMAE
  and TimeSformer, :mod:`vidfer.models.hf_video`), a hub id or a local ``save_pretrained``
  folder: its ``config.json`` fixes the architecture, clip length and frame size, its
  ``preprocessor_config.json`` the input normalisation.

The weights also say what input they were trained with (:func:`weights_input`, an
:class:`~vidfer.models.contract.InputContract`): a run config takes it unless it writes its own.

Only the backbone is taken: the source's classifier (``fc.*``, ``head.*``, ``classifier.*``) is
dropped, the model keeps its new head for its own classes. Every other parameter and buffer must
match in name and shape; a mismatch names the missing and unexpected keys and the shapes that
differ.
"""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from vidfer.config import ModelConfig
from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.checkpoint import load_checkpoint, read_state_dict
from vidfer.io.run_folder import RunDir
from vidfer.models.base import VideoModel
from vidfer.models.contract import InputContract, torchvision_input
from vidfer.models.published import detect_layout, to_vidfer

TORCHVISION_WEIGHTS = {
    "resnet3d_18": "video.R3D_18_Weights",
    "r2plus1d_18": "video.R2Plus1D_18_Weights",
    "mc3_18": "video.MC3_18_Weights",
    "s3d": "video.S3D_Weights",
    "mvit_v2_s": "video.MViT_V2_S_Weights",
    "swin3d_t": "video.Swin3D_T_Weights",
    "i3d_vgg16": "VGG16_Weights",  # ImageNet's 2D VGG-16, inflated when loaded
}
"""The torchvision weights enum (under ``torchvision.models``) of each family that has one."""

CLASSIFIER_PREFIXES = ("fc.", "head.", "classifier.")
"""Keys of a source's classifier (``classifier.*`` is S3D's): never loaded into a backbone."""

KEYS_SHOWN = 5
"""How many offending keys a mismatch lists per kind."""

OWN_WEIGHTS_INPUT: dict[str, Callable[[Mapping[str, Any]], InputContract | None]] = {}
"""Families whose builder loads weights of its own (e.g. ``i3d_mini_xception``'s FER2013
weights): ``model params -> `` the input contract of those weights, or None when the params
build the model without them. Filled by the family's module."""


KeyNames = Callable[[str], str]
"""The name in a published file of one of vidfer's keys (see :mod:`vidfer.models.published`)."""


Normalisation = tuple[tuple[float, ...], tuple[float, ...]]
"""An input ``(mean, std)`` on ``[0, 1]`` values, per channel."""


class Carried(NamedTuple):
    """What a family's self-describing weights (or, without weights, its architecture) fix.

    Attributes:
        params: The builder parameters that hold the architecture (written into the run's
            ``model.params``, so that the run is rebuilt without the weights).
        normalisation: The weights' input ``(mean, std)`` on ``[0, 1]`` values; None without
            weights or when the weights say nothing.
        frames: Frames of a clip the model takes.
        size: Height and width of the frames the model takes.
    """

    params: dict[str, Any]
    normalisation: Normalisation | None
    frames: int
    size: int


def key_problems(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    names: KeyNames | None = None,
) -> list[str]:
    """Human-readable differences between two state dicts (a few keys of each kind).

    ``names`` gives the file's own name of a key, shown after vidfer's when they differ.
    """

    def shown(key: str) -> str:
        published = key if names is None else names(key)
        return key if published == key else f"{key} (file: {published})"

    problems = []
    missing = [shown(key) for key in sorted(target.keys() - source.keys())]
    unexpected = [shown(key) for key in sorted(source.keys() - target.keys())]
    mismatched = [
        f"{shown(key)} {tuple(source[key].shape)} vs {tuple(target[key].shape)}"
        for key in sorted(source.keys() & target.keys())
        if source[key].shape != target[key].shape
    ]
    for kind, keys in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched)):
        if keys:
            more = f" and {len(keys) - KEYS_SHOWN} more" if len(keys) > KEYS_SHOWN else ""
            problems.append(f"{kind}: {', '.join(keys[:KEYS_SHOWN])}{more}")
    return problems


def _head_keys(model: nn.Module) -> set[str]:
    """Names of a video model's head parameters (none for another module)."""
    if not isinstance(model, VideoModel):
        return set()
    ids = {id(p) for p in model.head_parameters()}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def load_backbone(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    needs: str = "",
    names: KeyNames | None = None,
) -> None:
    """Load every backbone tensor of ``state`` into ``model``; the classifiers are left out.

    The classifier is the source's ``fc.*``, ``head.*`` or ``classifier.*`` and, for a vidfer
    video model, every parameter of its :meth:`~vidfer.models.base.VideoModel.head_parameters`
    (e.g. the i3d VGG-16's hidden 1x1x1 layer): the model keeps its new head.

    Args:
        model: The model to initialise.
        state: Parameter and buffer tensors by name.
        source: Where ``state`` came from, for error messages.
        needs: What the model needs to match, said in the error (e.g. ``width=1.0``).
        names: The source file's own name of each key, if it differs (a published layout).

    Raises:
        CheckpointError: if the keys or shapes do not match; the message lists a few.
    """
    head = _head_keys(model)

    def backbone(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            k: v
            for k, v in tensors.items()
            if not k.startswith(CLASSIFIER_PREFIXES) and k not in head
        }

    wanted, target = backbone(state), backbone(model.state_dict())
    problems = key_problems(wanted, target, names)
    if problems:
        raise CheckpointError(
            f"weights {source} do not match this model's backbone{needs}: {'; '.join(problems)}"
        )
    # Not strict only because the head is absent from the source on purpose.
    model.load_state_dict(wanted, strict=False)


class InitialState(NamedTuple):
    """What ``model.weights`` names: a state dict in vidfer's names, where it came from, and
    the file's own names of its keys if it is a published layout (for messages)."""

    state: dict[str, torch.Tensor]
    source: str
    names: KeyNames | None = None


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


def _entries(model_name: str) -> Any:
    """The torchvision weights enum of a family (None: it has none)."""
    path = TORCHVISION_WEIGHTS.get(model_name)
    if path is None:
        return None
    module, _, enum_name = f"torchvision.models.{path}".rpartition(".")
    return getattr(importlib.import_module(module), enum_name)


def published_names(model_name: str) -> list[str]:
    """The torchvision weights names ``model.weights`` accepts for a family (none: [])."""
    entries = _entries(model_name)
    return [] if entries is None else list(entries.__members__)


def weights_input(section: ModelConfig) -> InputContract | None:
    """The input the model's initial weights were trained with (:mod:`vidfer.models.contract`).

    A torchvision weights name gives its preset's mean, std and crop size; a file in a published
    layout its layout's input (VGG-Face: 0-255 RGB less its mean); a vidfer run folder the
    normalisation and size its run was trained with; a family that loads weights of its own (the
    FER2013 ``i3d_mini_xception``) theirs.

    Args:
        section: The ``model`` section (name, parameters, ``weights``).

    Returns:
        The contract, or None when the weights say nothing (random initialisation, a file in the
        family's own names).

    Raises:
        CheckpointError: if a weights file or run folder cannot be read.
    """
    carried = carried_input(section)
    if carried is not None:  # weights that describe themselves (Hugging Face folders)
        mean, std = carried.normalisation or (None, None)
        source = str(section.weights)
        return InputContract(
            mean=mean, std=std, size=carried.size, frames=carried.frames, source=source
        )
    spec = section.weights
    if spec is None:
        own = OWN_WEIGHTS_INPUT.get(section.name)
        return None if own is None else own(section.params)
    if spec in published_names(section.name):
        return torchvision_input(_entries(section.name)[spec])
    path = Path(spec)
    if path.is_dir() and RunDir(path).config_path.exists():
        transforms = RunDir(path).config().transforms
        return InputContract(
            mean=transforms.mean, std=transforms.std, size=transforms.size, source=f"run {path}"
        )
    if path.is_file():
        checkpoint = load_checkpoint(path)
        layout = detect_layout(checkpoint, _unwrapped(checkpoint, spec), section.name, spec)
        return None if layout is None else layout.input
    return None


def _torchvision_file(model_name: str, name: str) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of a torchvision weights entry, from torchvision's cache or download."""
    entries = _entries(model_name)
    if entries is None:
        raise ConfigError(
            f"model.weights {name!r}: {model_name} has no published weights names; give a "
            f"checkpoint file or a vidfer run folder (published names exist for "
            f"{', '.join(sorted(TORCHVISION_WEIGHTS))})"
        )
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
    return read_state_dict(file), f"{entries.__name__}.{name} ({file})"


def _weights_file(path: Path, model_name: str) -> InitialState:
    """A checkpoint file in vidfer's names or in a published layout, read in vidfer's names."""
    checkpoint = load_checkpoint(path)
    state = _unwrapped(checkpoint, str(path))
    layout = detect_layout(checkpoint, state, model_name, str(path))
    if layout is None:
        return InitialState(state, str(path))
    source = f"{path} (read as {layout.name})"
    return InitialState(to_vidfer(state, layout, str(path)), source, layout.published_key)


class DescribingFamily(abc.ABC):
    """A family whose weights carry their architecture and input (a Hugging Face folder)."""

    @abc.abstractmethod
    def carried(self, section: ModelConfig) -> Carried:
        """The architecture and input contract of the ``model`` section's weights (or, with no
        weights, of its ``params``).

        Raises:
            ConfigError: if the weights are another family's or disagree with the written
                params.
            CheckpointError: if the weights cannot be had.
        """

    @abc.abstractmethod
    def initial_state(self, spec: str) -> InitialState:
        """The backbone state dict ``model.weights`` names, in the family's parameter names.

        Raises:
            CheckpointError: if the weights cannot be read (one line naming them).
        """


DESCRIBING: dict[str, DescribingFamily] = {}
"""Families whose weights describe themselves, by family name. Filled by the family's module."""


def carried_input(section: ModelConfig) -> Carried | None:
    """What the weights of a self-describing family fix (None for every other family)."""
    family = DESCRIBING.get(section.name)
    return None if family is None else family.carried(section)


def initial_state(spec: str, model_name: str) -> InitialState:
    """The state dict ``model.weights`` names, a description of its source, its keys' names.

    Raises:
        ConfigError: on an unknown weights name.
        CheckpointError: if the file or run cannot be read (one line naming it), or is a
            published layout that ``model_name`` cannot hold.
    """
    path = Path(spec)
    family = DESCRIBING.get(model_name)
    if family is not None and not path.is_file() and not RunDir(path).config_path.exists():
        return family.initial_state(spec)
    if path.is_dir():
        run = RunDir(path)
        checkpoint = run.best_or_last() if run.config_path.exists() else None
        if checkpoint is None:
            raise CheckpointError(
                f"model.weights {spec}: a folder, but not a vidfer run folder (no config.yaml)"
            )
        return InitialState(
            dict(load_checkpoint(checkpoint)["model"]), f"run {path} ({checkpoint.name})"
        )
    if path.suffix in (".pt", ".pth", ".pkl", ".pickle", ".bin") or path.exists() or os.sep in spec:
        return _weights_file(path, model_name)
    return InitialState(*_torchvision_file(model_name, spec))
