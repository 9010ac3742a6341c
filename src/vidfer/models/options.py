"""Option checks, channel scaling and weight initialisation shared by the model families."""

from __future__ import annotations

import math

from torch import nn

from vidfer.errors import ConfigError

MAX_WIDTH = 8.0
"""The widest channel multiplier a family accepts (8x the published channels)."""
MAX_SIZE = 1024
"""The largest input side or clip length a fixed-size family is built for."""


def check_model_options(
    *,
    num_classes: int,
    width: float,
    temporal_stride: int | None = None,
    original: str = "",
    in_channels: int | None = None,
    **dropouts: float,
) -> None:
    """Raise a :class:`ConfigError` naming the first invalid common option.

    Args:
        num_classes: Classes of the score map (>= 1).
        width: Channel multiplier in (0, :data:`MAX_WIDTH`].
        temporal_stride: 1 (temporally dense) or 2 (the published model), when the family has one.
        original: Name of the published model, for the temporal-stride message.
        in_channels: Input channels (1 to :data:`MAX_SIZE`), when the family takes them.
        **dropouts: Dropout probabilities by option name, each in [0, 1).
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes={num_classes} must be at least 1")
    if not 0 < width <= MAX_WIDTH:
        raise ConfigError(
            f"width={width} must be in (0, {MAX_WIDTH:g}] (1.0 is the published model)"
        )
    if temporal_stride is not None and temporal_stride not in (1, 2):
        raise ConfigError(
            f"temporal_stride={temporal_stride} is not supported; use 1 (temporally dense) or 2 "
            f"({original})"
        )
    if in_channels is not None and not 1 <= in_channels <= MAX_SIZE:
        raise ConfigError(f"in_channels={in_channels} must be in [1, {MAX_SIZE}]")
    for name, rate in dropouts.items():
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"{name}={rate} must be in [0, 1)")


def scaled_channels(channels: int, width: float, *, minimum: int = 4, multiple: int = 1) -> int:
    """Channels of a layer with ``channels`` at width 1.0, in a model scaled by ``width``.

    The nearest multiple of ``multiple`` to ``channels * width``, and at least ``minimum`` (rounded
    up to a multiple). The default minimum of 4 keeps a few features per BatchNorm in a tiny test
    model; ``multiple`` keeps a grouped convolution's channels divisible by its groups.

    Args:
        channels: Channels at width 1.0.
        width: Channel multiplier (> 0).
        minimum: Fewest channels returned.
        multiple: The result is a multiple of it (e.g. the groups of a grouped convolution).
    """
    return multiple * max(math.ceil(minimum / multiple), round(channels * width / multiple))


def init_conv_bn(model: nn.Module, *, skip: nn.Module) -> None:
    """He (fan-out) initialisation of every 3D convolution but ``skip``, BatchNorm to identity.

    The initialisation of torchvision's video ResNets and of Hara et al.'s 3D ResNets.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv3d) and module is not skip:
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm3d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
