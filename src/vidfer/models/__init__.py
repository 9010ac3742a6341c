"""Video models, heads and temporal poolings.

Importing this package registers every model in :data:`vidfer.registry.MODELS` and every pooling
in :data:`vidfer.registry.POOLINGS`; :func:`build_model` and :func:`build_pooling` build them by
their config names.
"""

from __future__ import annotations

import inspect

from vidfer.config import ModelConfig
from vidfer.models.attention import AttentionModule, AttentiveModel, build_attention
from vidfer.models.base import TemporalGeometry, VideoModel
from vidfer.models.c3d import C3D, c3d
from vidfer.models.fstcn import FstCN
from vidfer.models.heads import ConvHead, set_pooling_level
from vidfer.models.hf_video import HFVideo, TimeSformer, VideoMAE, timesformer, videomae
from vidfer.models.inflate import (
    I3DVGG16,
    I3DMiniXception,
    inflate_module,
    inflate_state,
)
from vidfer.models.mc3 import MC3, mc3_18
from vidfer.models.pooling import (
    TemporalAvgPool,
    TemporalMaxPool,
    TemporalPooling,
    mask_from_lengths,
)
from vidfer.models.r2plus1d import R2Plus1D, r2plus1d_18
from vidfer.models.resnet3d import ResNet3D, resnet3d_18
from vidfer.models.resnext3d import ResNeXt3D, resnext3d_101
from vidfer.models.torchvision_cnns import VGG16CNN, ResNetCNN
from vidfer.models.torchvision_video import S3D, MViTV2S, Swin3DT, TorchvisionVideo
from vidfer.models.weights import carried_input, initial_state, load_backbone
from vidfer.registry import MODELS, POOLINGS

__all__ = [
    "C3D",
    "I3DVGG16",
    "MC3",
    "S3D",
    "VGG16CNN",
    "AttentionModule",
    "AttentiveModel",
    "ConvHead",
    "FstCN",
    "HFVideo",
    "I3DMiniXception",
    "MViTV2S",
    "R2Plus1D",
    "ResNeXt3D",
    "ResNet3D",
    "ResNetCNN",
    "Swin3DT",
    "TemporalAvgPool",
    "TemporalGeometry",
    "TemporalMaxPool",
    "TemporalPooling",
    "TimeSformer",
    "TorchvisionVideo",
    "VideoMAE",
    "VideoModel",
    "build_attention",
    "build_model",
    "build_pooling",
    "c3d",
    "inflate_module",
    "mask_from_lengths",
    "mc3_18",
    "model_from_config",
    "r2plus1d_18",
    "resnet3d_18",
    "resnext3d_101",
    "timesformer",
    "videomae",
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


def model_from_config(section: ModelConfig, num_classes: int) -> VideoModel:
    """Build the model of a run config's ``model`` section: its temporal pooling level
    (``model.pooling_level``), its initial weights (``model.weights``, backbone only; the
    architecture too where they describe it) and its
    attention module, if any.

    Raises:
        ConfigError: on an unknown name or an invalid option of the model or the module.
        CheckpointError: if the weights cannot be read or do not fit the backbone.
    """
    # Weights that describe themselves (Hugging Face folders) fix the architecture.
    carried = None if section.weights is None else carried_input(section)
    params = section.params if carried is None else {**section.params, **carried.params}
    model = build_model(section.name, num_classes=num_classes, **params)
    set_pooling_level(model, section.pooling_level, name=section.name)
    if section.weights is not None:
        initial = initial_state(section.weights, section.name)
        state = inflate_state(initial.state, model.state_dict())  # 2D image weights -> 3D
        load_backbone(model, state, source=initial.source, names=initial.names)
    if section.attention is None:
        return model
    attention = build_attention(
        section.attention.name, model.feature_channels, **section.attention.params
    )
    return AttentiveModel(model, attention)


def build_pooling(
    name: str, *, num_classes: int | None = None, **params: object
) -> TemporalPooling:
    """Build the temporal pooling registered under ``name``.

    Args:
        name: Registered pooling name, e.g. ``"avg"``, ``"softmax"`` or ``"adaptive_softmax"``.
        num_classes: The model's class count, passed on to poolings that take one (learned
            per-class parameters) unless the options already give it.
        **params: The pooling's options.

    Raises:
        ConfigError: if the name is unknown (the message lists the known names) or an option is
            unknown or invalid.
    """
    builder = POOLINGS.get(name)
    if num_classes is not None and "num_classes" in inspect.signature(builder).parameters:
        params.setdefault("num_classes", num_classes)
    return POOLINGS.build(name, **params)
