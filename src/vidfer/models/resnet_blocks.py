"""The residual blocks of the 3D ResNet skeleton (:mod:`vidfer.models.video_resnet`).

A block takes its convolutions from a builder, as torchvision's video ``BasicBlock`` takes its
``conv_builder``: :func:`conv3x3x3` for the 3D ResNet and the ResNeXt, :func:`conv1x3x3` for
MC3's spatial-only layers, a factorised (2+1)D conv (:func:`conv1x3x3` then a temporal conv) for
R(2+1)D. Its shortcut, crop and final ReLU are those of :class:`ResidualBlock`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from vidfer.models.base import temporal_params

Stride = tuple[int, int, int]  # (time, height, width)


class ConvBuilder(Protocol):
    """Builds a block's 3x3x3 (or factorised) convolution, as torchvision's ``conv_makers``."""

    def __call__(
        self,
        in_planes: int,
        out_planes: int,
        midplanes: int,
        *,
        stride: Stride = (1, 1, 1),
        temporal_padding: int = 1,
        groups: int = 1,
    ) -> nn.Module: ...


def conv3x3x3(
    in_planes: int,
    out_planes: int,
    midplanes: int,
    *,
    stride: Stride = (1, 1, 1),
    temporal_padding: int = 1,
    groups: int = 1,
) -> nn.Conv3d:
    """A full 3x3x3 convolution (``midplanes`` is unused: nothing sits between two convs)."""
    padding = (temporal_padding, 1, 1)
    return nn.Conv3d(
        in_planes, out_planes, 3, stride=stride, padding=padding, groups=groups, bias=False
    )


def conv1x3x3(
    in_planes: int,
    out_planes: int,
    midplanes: int,
    *,
    stride: Stride = (1, 1, 1),
    temporal_padding: int = 1,
    groups: int = 1,
) -> nn.Conv3d:
    """A (1, 3, 3) convolution, spatial only: torchvision's ``Conv3DNoTemporal`` (MC3's layers
    2-4) and the first half of its ``Conv2Plus1D``.

    It strides in height and width only (``stride``'s time step is for a temporal conv after it);
    ``midplanes`` and ``temporal_padding`` are unused (a temporal kernel of 1 needs no padding).
    """
    _, h, w = stride
    return nn.Conv3d(
        in_planes, out_planes, (1, 3, 3), (1, h, w), (0, 1, 1), groups=groups, bias=False
    )


@dataclass(frozen=True)
class Stage:
    """Channels and depth of one of the four stages, at the model's width.

    Attributes:
        depth: Residual blocks in the stage.
        inner: Channels of a bottleneck's grouped conv (a BasicBlock has none: equal to ``out``).
        out: Channels of every block's output.
        groups: Groups of the bottleneck's grouped conv (the cardinality; 1 otherwise).
    """

    depth: int
    inner: int
    out: int
    groups: int


class ResidualBlock(nn.Module, abc.ABC):
    """A main path plus a shortcut; subclasses build the main path, then call ``_add_shortcut``.

    Without temporal padding the main path drops frames at both ends and the shortcut is cropped
    to the same frames (only without temporal stride: the model options enforce it).
    """

    downsample: nn.Sequential | None
    crop: int

    @abc.abstractmethod
    def convs(self) -> Iterator[nn.Conv3d]:
        """The convolutions of the main path, in order."""

    @abc.abstractmethod
    def main_path(self, x: torch.Tensor) -> torch.Tensor:
        """The main path's output, before the sum with the shortcut and the last ReLU."""

    @staticmethod
    def _convs_of(*modules: nn.Module) -> Iterator[nn.Conv3d]:
        """The 3D convolutions in ``modules`` (each one or a container of some), in order."""
        for module in modules:
            yield from (m for m in module.modules() if isinstance(m, nn.Conv3d))

    def _add_shortcut(self, in_planes: int, out_planes: int, stride: Stride) -> None:
        """A 1x1x1 projection shortcut when the shape changes (type B), and the crop."""
        self.downsample = None
        if stride != (1, 1, 1) or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, out_planes, 1, stride=stride, bias=False),
                nn.BatchNorm3d(out_planes),
            )
        self.relu = nn.ReLU(inplace=True)
        # Frames the main path loses at each end: ((k - 1) / 2 - p) per conv.
        self.crop = sum((k - 1) // 2 - p for k, _, p in map(temporal_params, self.convs()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output ``(B, out, T_out, H_out, W_out)`` of ``x`` ``(B, in_planes, T, H, W)``."""
        out = self.main_path(x)
        shortcut = x
        if self.crop:
            # Unpadded convs have no temporal stride, so the centre frames of x line up with the
            # main path's output frames one to one.
            shortcut = x[:, :, self.crop : x.shape[2] - self.crop]  # (B, C, T - 2 * crop, H, W)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.relu(out + shortcut)


class BasicBlock(ResidualBlock):
    """torchvision's video ``BasicBlock``: two convs from ``conv`` (with its parameter names).

    Args:
        in_planes: Input channels.
        stage: The stage: its ``out`` channels are the block's output, its ``groups`` those of
            both convs.
        conv: Builder of the two convolutions.
        stride: ``(time, height, width)`` stride of the first conv and the shortcut.
        temporal_padding: Time padding of the convs (1; 0 drops one frame at each end).
    """

    def __init__(
        self,
        in_planes: int,
        stage: Stage,
        conv: ConvBuilder,
        *,
        stride: Stride = (1, 1, 1),
        temporal_padding: int = 1,
    ) -> None:
        super().__init__()
        planes, pad_t, groups = stage.out, temporal_padding, stage.groups
        # torchvision computes midplanes from the block's input and output channels, for both.
        midplanes = (in_planes * planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * planes)
        self.conv1 = nn.Sequential(
            conv(
                in_planes, planes, midplanes, stride=stride, temporal_padding=pad_t, groups=groups
            ),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            conv(planes, planes, midplanes, temporal_padding=pad_t, groups=groups),
            nn.BatchNorm3d(planes),
        )
        self._add_shortcut(in_planes, planes, stride)

    def convs(self) -> Iterator[nn.Conv3d]:
        """The convolutions the builder made for ``conv1`` and ``conv2``, in order."""
        return self._convs_of(self.conv1[0], self.conv2[0])

    def main_path(self, x: torch.Tensor) -> torch.Tensor:
        """``conv2(conv1(x))``."""
        return self.conv2(self.conv1(x))


class BlockBuilder(Protocol):
    """Builds one residual block of a stage (a :class:`ResidualBlock` class is one)."""

    def __call__(
        self,
        in_planes: int,
        stage: Stage,
        conv: ConvBuilder,
        *,
        stride: Stride = (1, 1, 1),
        temporal_padding: int = 1,
    ) -> ResidualBlock: ...
