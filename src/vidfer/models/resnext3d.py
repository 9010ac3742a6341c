"""3D ResNeXt-101 of Hara et al. (2018), temporally dense by default (Ayral's thesis, 2.1.1).

Layer for layer the ``resnext101`` of Hara's 3D-ResNets-PyTorch (same parameter names): a 7x7x7
stem with spatial stride 2, a 3x3x3 max-pool with stride 2, then 3, 4, 23 and 3 bottleneck blocks
whose 3x3x3 convolution is grouped in 32 (cardinality), with 1x1x1 projection shortcuts (type B).
Hara's layers have 128, 256, 512 and 1024 channels in the grouped conv and twice that at the
block outputs, so 2048 features. The temporally dense variant drops every temporal stride (of
the max-pool and of layers 2-4); the classifier is a 1x1x1 convolution (:class:`ConvHead`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from vidfer.models.resnet_blocks import ConvBuilder, ResidualBlock, Stage, Stride, conv3x3x3
from vidfer.models.video_resnet import Architecture, ResNetOptions, VideoResNet, takes_options
from vidfer.registry import MODELS


class Bottleneck(ResidualBlock):
    """Hara's ``ResNeXtBottleneck``: 1x1x1, grouped 3x3x3 (from ``conv``), 1x1x1, shortcut.

    Args:
        in_planes: Input channels.
        stage: The stage: channels of the grouped conv (``inner``, a multiple of ``groups``) and
            of the output.
        conv: Builder of the grouped conv.
        stride: ``(time, height, width)`` stride of the grouped conv and the shortcut.
        temporal_padding: Time padding of the grouped conv.
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
        mid, out = stage.inner, stage.out
        self.conv1 = nn.Conv3d(in_planes, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = conv(
            mid, mid, mid, stride=stride, temporal_padding=temporal_padding, groups=stage.groups
        )
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out)
        self._add_shortcut(in_planes, out, stride)

    def convs(self) -> Iterator[nn.Conv3d]:
        """The three convolutions of the main path, in order."""
        return self._convs_of(self.conv1, self.conv2, self.conv3)

    def main_path(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_planes, T, H, W)`` -> ``(B, out, T / st, H / s, W / s)`` before the sum."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


def hara_stem(
    in_channels: int, out_channels: int, *, width: float, temporal_stride: int, padded: bool
) -> list[tuple[str, nn.Module]]:
    """Hara's stem: a 7x7x7 conv with spatial stride 2, BN, ReLU and a 3x3x3 max-pool with
    stride 2 in space and ``temporal_stride`` in time (registered as ``conv1``, ``bn1``...)."""
    pad_t = 1 if padded else 0
    return [
        (
            "conv1",
            nn.Conv3d(
                in_channels,
                out_channels,
                7,
                stride=(1, 2, 2),
                padding=(3 * pad_t, 3, 3),
                bias=False,
            ),
        ),
        ("bn1", nn.BatchNorm3d(out_channels)),
        ("relu", nn.ReLU(inplace=True)),
        ("maxpool", nn.MaxPool3d(3, stride=(temporal_stride, 2, 2), padding=(pad_t, 1, 1))),
    ]


RESNEXT3D_101 = Architecture(
    original="Hara's original",
    stem=hara_stem,
    block=Bottleneck,
    conv=conv3x3x3,
    depths=(3, 4, 23, 3),
    planes=(128, 256, 512, 1024),
    expansion=2,
    cardinality=32,
)


class ResNeXt3D(VideoResNet):
    """3D ResNeXt-101 with a fully convolutional head (:data:`RESNEXT3D_101`).

    Args:
        num_classes: Classes ``K`` of the score map.
        options: Width (the grouped convs keep 32 groups: their channels are rounded to a
            multiple of 32, at least 32), temporal stride, dropouts, spatial pooling.

    Raises:
        ConfigError: on an invalid option value.
    """

    def __init__(self, num_classes: int, options: ResNetOptions) -> None:
        super().__init__(num_classes, RESNEXT3D_101, options)


@MODELS.register("resnext3d_101")
@takes_options(without=("temporal_padding", "in_channels"))
def resnext3d_101(num_classes: int, options: ResNetOptions) -> ResNeXt3D:
    """3D ResNeXt-101 (Hara et al.; cardinality 32), temporally dense by default.

    Takes the options of :class:`~vidfer.models.video_resnet.ResNetOptions` as keywords, but
    ``temporal_padding`` (always padded) and ``in_channels`` (RGB); ``temporal_stride=2`` is
    Hara's original (one score per 16 frames).

    Args:
        num_classes: Classes ``K`` of the score map.
        options: The options (given as keywords).

    Raises:
        ConfigError: on an invalid option.
    """
    return ResNeXt3D(num_classes, options)
