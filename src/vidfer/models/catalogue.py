"""The model zoo at a glance (``vidfer models``): each family's weights, size, cost and input.

For every registered clip model, :func:`describe_family` builds the architecture on the meta
device (no memory, no weights read or made) and counts, with
:class:`torch.utils.flop_counter.FlopCounterMode`, the floating-point operations of one forward
pass over one clip of its default input: the frames and side of its input contract
(:mod:`vidfer.models.contract`), else vidfer's default clip (16 frames of 112 pixels). A
multiply-add counts as 2 operations (torchvision's ``_ops`` metadata counts it as 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from vidfer.config import ModelConfig, SamplerConfig, TransformConfig
from vidfer.models import build_model
from vidfer.models.contract import InputContract
from vidfer.models.published import LAYOUTS
from vidfer.models.weights import published_names, weights_input

CLASSES = 7
"""Classes of the models described (the basic expressions)."""


@dataclass(frozen=True)
class FamilyInfo:
    """One model family as ``vidfer models`` lists it.

    Attributes:
        name: The registered name.
        weights: Its published ``model.weights`` names.
        files: The published checkpoint layouts a weights file of it may be in, with the input
            contract such a file brings.
        parameters: Parameters at the default options and 7 classes.
        flops: Floating-point operations of one clip of ``clip`` (multiply-add = 2).
        clip: The clip counted, ``(C, T, H, W)``.
        contract: The input of the architecture and of the weights it loads by default.
        weights_contracts: The input contract of each published weights name.
    """

    name: str
    weights: tuple[str, ...]
    files: dict[str, InputContract]
    parameters: int
    flops: int
    clip: tuple[int, int, int, int]
    contract: InputContract
    weights_contracts: dict[str, InputContract]


def describe_family(name: str) -> FamilyInfo:
    """Weights, parameters, FLOPs per clip and input contract of a registered model family.

    Raises:
        ConfigError: if no model has that name.
    """
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised for real
        model = build_model(name, num_classes=CLASSES)
        contract = model.input_contract().taking(weights_input(ModelConfig(name=name)))
        frames = contract.frames or SamplerConfig().clip_len
        size = contract.size or TransformConfig().size
        clip = (3, frames, size, size)
        x = torch.zeros(1, *clip)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(x)
    names = tuple(published_names(name))
    return FamilyInfo(
        name=name,
        weights=names,
        files={
            layout.name: contract.taking(layout.input)
            for layout in LAYOUTS
            if layout.family == name
        },
        parameters=sum(p.numel() for p in model.parameters()),
        flops=int(counter.get_total_flops()),
        clip=clip,
        contract=contract,
        weights_contracts={
            weights: contract.taking(weights_input(ModelConfig(name=name, weights=weights)))
            for weights in names
            if weights != "DEFAULT"
        },
    )
