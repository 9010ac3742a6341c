"""One 3D ResNet skeleton for every ResNet family, after torchvision's ``VideoResNet``.

A family (:mod:`~vidfer.models.resnet3d`, :mod:`~vidfer.models.r2plus1d`, :mod:`~vidfer.models.mc3`,
:mod:`~vidfer.models.resnext3d`) is an :class:`Architecture`: its stem, its residual block class and
that block's convolution builder (one per stage if they differ), its four stage depths and channel
counts and its cardinality. :class:`VideoResNet` builds the stem, the four stages (layers 2-4 halve
height and width and, with ``temporal_stride=2``, time) and a fully convolutional head
(:class:`~vidfer.models.heads.ConvHead`), initialises them as torchvision and Hara et al. do, and
derives the temporal geometry from the convolutions. The user's options are one
:class:`ResNetOptions`, checked once; :func:`takes_options` gives a family's builder their keywords.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models.base import HeadedVideoModel, chain_geometry
from vidfer.models.heads import ConvHead
from vidfer.models.options import check_model_options, init_conv_bn, scaled_channels
from vidfer.models.resnet_blocks import BlockBuilder, ConvBuilder, ResidualBlock, Stage, Stride
from vidfer.models.weights import load_backbone

# Keys of a source model's classifier: never loaded, the head is new.


class StemBuilder(Protocol):
    """Builds a stem as named modules, registered on the model under these names, in order."""

    def __call__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        width: float,
        temporal_stride: int,
        padded: bool,
    ) -> list[tuple[str, nn.Module]]: ...


@dataclass(frozen=True)
class Architecture:
    """What makes a 3D ResNet family.

    Attributes:
        original: The published model, for messages (e.g. ``"torchvision's r3d_18"``).
        stem: Builder of the stem (its output has ``scaled_channels(stem_planes, width)``).
        block: Residual block class of every stage.
        conv: Builder of the blocks' 3x3x3 (or factorised) convolutions.
        stage_convs: Builders of each stage's convolutions when they differ between stages
            (torchvision's ``conv_makers``; MC3: 3x3x3 in layer 1, 1x3x3 after); empty:
            ``conv`` in every stage.
        depths: Blocks in each of the 4 stages.
        planes: Channels of each stage at width 1.0 (of the grouped conv for bottlenecks).
        expansion: Block outputs have ``expansion`` times ``planes`` channels.
        cardinality: Groups of the blocks' grouped conv (1: not grouped).
        stem_planes: Output channels of the stem at width 1.0.
    """

    original: str
    stem: StemBuilder
    block: BlockBuilder
    conv: ConvBuilder
    depths: tuple[int, int, int, int]
    planes: tuple[int, int, int, int] = (64, 128, 256, 512)
    expansion: int = 1
    cardinality: int = 1
    stem_planes: int = 64
    stage_convs: tuple[ConvBuilder, ...] = ()

    def stage_conv(self, index: int) -> ConvBuilder:
        """Builder of the convolutions of stage ``index`` (1 to 4)."""
        return self.stage_convs[index - 1] if self.stage_convs else self.conv

    def stages(self, width: float) -> list[Stage]:
        """The four stages at ``width``; grouped channels stay multiples of the cardinality."""
        return [
            Stage(
                depth=depth,
                inner=scaled_channels(planes, width, multiple=self.cardinality),
                out=scaled_channels(planes * self.expansion, width),
                groups=self.cardinality,
            )
            for depth, planes in zip(self.depths, self.planes, strict=True)
        ]


@dataclass(frozen=True, kw_only=True)
class ResNetOptions:
    """The options of the 3D ResNet families (a family's builder takes a subset).

    Attributes:
        width: Multiplier of every channel count (1.0 is the published model; each at least 4).
        temporal_stride: 1: temporally dense, one score per frame (Ayral); 2: the original's
            stride 2 in time in layers 2-4 (and in Hara's max-pool).
        temporal_padding: Pad time in every temporal conv (``T' = T`` for the dense model).
            Without padding each output step sees exactly ``geometry.receptive_field`` frames.
        in_channels: Channels ``C`` of the input clips.
        dropout_input: Dropout probability on the input clip in training.
        dropout_features: Dropout probability on the pooled features in training.
        spatial_pool: ``"avg"``, or ``"max"`` for the thesis's 2-step pooling, over ``(H', W')``.
    """

    width: float = 1.0
    temporal_stride: int = 1
    temporal_padding: bool = True
    in_channels: int = 3
    dropout_input: float = 0.0
    dropout_features: float = 0.0
    spatial_pool: str = "avg"

    def check(self, num_classes: int, original: str) -> None:
        """Raise a :class:`ConfigError` naming the first invalid option or combination.

        ``spatial_pool`` is checked by :class:`ConvHead`; ``original`` names the published
        model in the temporal-stride message.
        """
        check_model_options(
            num_classes=num_classes,
            width=self.width,
            temporal_stride=self.temporal_stride,
            original=original,
            in_channels=self.in_channels,
            dropout_input=self.dropout_input,
            dropout_features=self.dropout_features,
        )
        if not self.temporal_padding and self.temporal_stride != 1:
            raise ConfigError(
                f"temporal_padding=False needs temporal_stride=1 (got {self.temporal_stride}): "
                f"strided unpadded convs would not line up with the residual shortcuts; set "
                f"temporal_stride=1 or temporal_padding=True"
            )


class VideoResNet(HeadedVideoModel):
    """A 3D ResNet of any :class:`Architecture` with a fully convolutional head.

    Args:
        num_classes: Classes ``K`` of the score map.
        architecture: The family: stem, block, convolution, depths, channels, cardinality.
        options: The user's options.

    Raises:
        ConfigError: on an invalid option value or combination.
    """

    def __init__(
        self, num_classes: int, architecture: Architecture, options: ResNetOptions
    ) -> None:
        super().__init__()
        options.check(num_classes, architecture.original)
        self.num_classes = num_classes
        width, temporal_stride = options.width, options.temporal_stride
        pad_t = 1 if options.temporal_padding else 0
        self.architecture = architecture
        self.input_dropout = nn.Dropout(options.dropout_input)
        stem_planes = scaled_channels(architecture.stem_planes, width)
        stem = architecture.stem(
            options.in_channels,
            stem_planes,
            width=width,
            temporal_stride=temporal_stride,
            padded=options.temporal_padding,
        )
        for name, module in stem:
            self.add_module(name, module)
        self.stem_names = tuple(name for name, _ in stem)
        in_planes = stem_planes
        for index, stage in enumerate(architecture.stages(width), start=1):
            # Layer 1 keeps the stem's resolution; the first block of layers 2-4 strides.
            first: Stride = (1, 1, 1) if index == 1 else (temporal_stride, 2, 2)
            conv = architecture.stage_conv(index)
            blocks = []
            for block_index in range(stage.depth):
                stride = first if block_index == 0 else (1, 1, 1)
                blocks.append(
                    architecture.block(
                        in_planes, stage, conv, stride=stride, temporal_padding=pad_t
                    )
                )
                in_planes = stage.out
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
        self.feature_channels = in_planes
        self.head = ConvHead(
            in_planes,
            num_classes,
            spatial_pool=options.spatial_pool,
            dropout=options.dropout_features,
        )
        init_conv_bn(self, skip=self.head.classifier)
        self.geometry = chain_geometry(self._temporal_layers())

    def _stem(self) -> Iterator[nn.Module]:
        return (self.get_submodule(name) for name in self.stem_names)

    def _layers(self) -> Iterator[nn.Module]:
        return (self.get_submodule(f"layer{index}") for index in range(1, 5))

    def _temporal_layers(self) -> Iterator[nn.Conv3d | nn.MaxPool3d]:
        """The layers on the longest path from input to features, in order."""
        for stem_module in self._stem():
            for module in stem_module.modules():
                if isinstance(module, nn.Conv3d | nn.MaxPool3d):
                    yield module
        for layer in self._layers():
            for block in layer.children():
                assert isinstance(block, ResidualBlock)
                yield from block.convs()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, F, T', H', W')`` of a clip ``(B, C, T, H, W)``.

        Raises:
            ConfigError: if the model has no temporal padding and the clip is shorter than its
                receptive field.
        """
        if self.geometry.padding == 0 and x.shape[2] < self.geometry.receptive_field:
            raise ConfigError(
                f"a model with temporal_padding=False needs clips of at least "
                f"{self.geometry.receptive_field} frames, got {x.shape[2]}; use longer clips or "
                f"temporal_padding=True"
            )
        x = self.input_dropout(x)
        for module in self._stem():
            x = module(x)  # (B, stem channels, T, H/2, W/2) when padded (H/4, W/4 for Hara's)
        for layer in self._layers():
            x = layer(x)
        return x  # (B, F, T', H/16, W/16) (H/32, W/32 for Hara's)

    def load_backbone(self, state: Mapping[str, torch.Tensor], *, source: str) -> None:
        """Load backbone weights from a state dict (e.g. torchvision's ``r3d_18``).

        The source model's classifier (``fc.*`` for torchvision, ``head.*`` for vidfer) is
        dropped; every other key must match this model's backbone exactly, in name and shape.

        Args:
            state: Parameter and buffer tensors by name.
            source: Where ``state`` came from, for error messages (e.g. the file name).

        Raises:
            CheckpointError: if the keys or shapes do not match; the message lists a few.
        """
        needs = f" ({self.architecture.original} needs width=1.0 and in_channels=3)"
        load_backbone(self, state, source=source, needs=needs)


M = TypeVar("M", bound=VideoResNet)


def takes_options(*, without: Sequence[str] = ()) -> Callable[[Callable[..., M]], Callable[..., M]]:
    """Let a family's builder ``(num_classes, options, *, own...)`` take the options as keywords.

    The decorated builder is called ``builder(num_classes, width=..., ..., own=...)``: the
    keywords that are fields of :class:`ResNetOptions` (all but ``without``) make its
    ``options``, the rest are its own keyword-only parameters. Its signature lists them all with
    their defaults, so that the model registry rejects an unknown option by name and lists the
    accepted ones, and so does a direct call.

    Args:
        without: Fields of :class:`ResNetOptions` the family does not offer (their defaults hold).
    """

    def decorate(builder: Callable[..., M]) -> Callable[..., M]:
        keyword = inspect.Parameter.KEYWORD_ONLY
        option_parameters = [
            inspect.Parameter(field.name, keyword, default=field.default, annotation=field.type)
            for field in fields(ResNetOptions)
            if field.name not in without
        ]
        names = {parameter.name for parameter in option_parameters}
        num_classes, _options, *own = inspect.signature(builder).parameters.values()
        signature = inspect.signature(builder).replace(
            parameters=[num_classes, *option_parameters, *own]
        )

        @functools.wraps(builder)
        def build(*args: Any, **params: Any) -> M:
            bound = signature.bind(*args, **params)  # a TypeError names an unknown keyword
            chosen = {key: bound.arguments.pop(key) for key in names & set(bound.arguments)}
            return builder(
                bound.arguments.pop("num_classes"), ResNetOptions(**chosen), **bound.arguments
            )

        build.__signature__ = signature  # type: ignore[attr-defined]
        return build

    return decorate
