"""Video models, heads and temporal poolings.

Importing this package registers every model in :data:`vidfer.registry.MODELS` and every pooling
in :data:`vidfer.registry.POOLINGS`; :func:`build_model` and :func:`build_pooling` build them by
their config names.
"""

from __future__ import annotations

from torch import nn

from vidfer.models.base import TemporalGeometry, VideoModel
from vidfer.models.heads import ConvHead
from vidfer.models.pooling import (
    TemporalAvgPool,
    TemporalMaxPool,
    TemporalPooling,
    mask_from_lengths,
)
from vidfer.models.resnet3d import ResNet3D, resnet3d_18
from vidfer.registry import MODELS, POOLINGS

__all__ = [
    "ConvHead",
    "ResNet3D",
    "TemporalAvgPool",
    "TemporalGeometry",
    "TemporalMaxPool",
    "TemporalPooling",
    "VideoModel",
    "build_model",
    "build_pooling",
    "mask_from_lengths",
    "resnet3d_18",
]


def build_model(name: str, num_classes: int, **params: object) -> VideoModel:
    """Build the video model registered under ``name``.

    Args:
        name: Registered model name, e.g. ``"resnet3d_18"``.
        num_classes: Classes ``K`` of the score map.
        **params: The builder's options (e.g. ``width``, ``temporal_stride``).

    Raises:
        ConfigError: if the name is unknown (the message lists the known names) or an option is
            unknown or invalid.
    """
    model = MODELS.build(name, num_classes=num_classes, **params)
    if not isinstance(model, VideoModel):
        raise TypeError(f"model builder {name!r} returned {type(model).__name__}, not a VideoModel")
    return model


def build_pooling(name: str, **params: object) -> nn.Module:
    """Build the temporal pooling registered under ``name``.

    Args:
        name: Registered pooling name, e.g. ``"avg"`` or ``"max"``.
        **params: The pooling's options.

    Raises:
        ConfigError: if the name is unknown (the message lists the known names) or an option is
            unknown or invalid.
    """
    pooling = POOLINGS.build(name, **params)
    if not isinstance(pooling, nn.Module):
        raise TypeError(f"pooling builder {name!r} returned {type(pooling).__name__}")
    return pooling
