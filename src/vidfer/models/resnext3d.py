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

from vidfer.models.base import HeadedVideoModel, TemporalGeometry, chain_geometry
from vidfer.models.heads import ConvHead
from vidfer.models.options import check_model_options, init_conv_bn, scaled_channels
from vidfer.registry import MODELS

_STEM = 64
# Channels of the grouped conv of layers 1-4 at width 1.0; block outputs have _EXPANSION times.
_BASE_PLANES = (128, 256, 512, 1024)
_EXPANSION = 2
_RESNEXT101_BLOCKS = (3, 4, 23, 3)
_CARDINALITY = 32


class Bottleneck(nn.Module):
    """Hara's ``ResNeXtBottleneck``: 1x1x1, grouped 3x3x3, 1x1x1, with a residual shortcut.

    Args:
        in_planes: Input channels.
        mid_planes: Channels of the grouped 3x3x3 conv (a multiple of ``cardinality``).
        out_planes: Output channels.
        cardinality: Groups of the 3x3x3 conv.
        stride: ``(time, height, width)`` stride of the 3x3x3 conv and the shortcut.
    """

    def __init__(
        self,
        in_planes: int,
        mid_planes: int,
        out_planes: int,
        *,
        cardinality: int,
        stride: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_planes, mid_planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid_planes)
        self.conv2 = nn.Conv3d(
            mid_planes,
            mid_planes,
            kernel_size=3,
            stride=stride,
            padding=1,
            groups=cardinality,
            bias=False,
        )
        self.bn2 = nn.BatchNorm3d(mid_planes)
        self.conv3 = nn.Conv3d(mid_planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != (1, 1, 1) or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_planes, T, H, W)`` -> ``(B, out_planes, T / st, H / s, W / s)``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _then(first: TemporalGeometry, second: TemporalGeometry) -> TemporalGeometry:
    """Geometry of ``second`` applied to the output of ``first``."""
    return TemporalGeometry(
        receptive_field=first.receptive_field + (second.receptive_field - 1) * first.stride,
        stride=first.stride * second.stride,
        padding=first.padding + second.padding * first.stride,
    )


class ResNeXt3D(HeadedVideoModel):
    """3D ResNeXt with bottleneck blocks and a fully convolutional head.

    Args:
        num_classes: Classes ``K`` of the score map.
        blocks_per_layer: Bottlenecks in each of the 4 layers (``(3, 4, 23, 3)``: ResNeXt-101).
        width: Multiplier of every channel count. The grouped convs keep 32 groups, so their
            channels are rounded to a multiple of 32 (at least 32).
        temporal_stride: 1 for the temporally dense model; 2 for Hara's original (stride 2 in
            time in the max-pool and layers 2-4: one score per 16 frames).
        dropout_input: Dropout probability on the input clip in training.
        dropout_features: Dropout probability on the pooled features in training.
        spatial_pool: ``"avg"`` or ``"max"`` pooling over ``(H', W')`` before the classifier.

    Raises:
        ConfigError: on an invalid option value.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        blocks_per_layer: tuple[int, int, int, int] = _RESNEXT101_BLOCKS,
        width: float = 1.0,
        temporal_stride: int = 1,
        dropout_input: float = 0.0,
        dropout_features: float = 0.0,
        spatial_pool: str = "avg",
    ) -> None:
        super().__init__()
        check_model_options(
            num_classes=num_classes,
            width=width,
            temporal_stride=temporal_stride,
            original="Hara's original",
            dropout_input=dropout_input,
            dropout_features=dropout_features,
        )
        self.num_classes = num_classes
        stem = scaled_channels(_STEM, width)
        self.input_dropout = nn.Dropout(dropout_input)
        self.conv1 = nn.Conv3d(
            3, stem, kernel_size=7, stride=(1, 2, 2), padding=(3, 3, 3), bias=False
        )
        self.bn1 = nn.BatchNorm3d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=(temporal_stride, 2, 2), padding=1)
        layers = []
        in_planes = stem
        for index, (planes, blocks) in enumerate(zip(_BASE_PLANES, blocks_per_layer, strict=True)):
            mid = scaled_channels(planes, width, multiple=_CARDINALITY)
            out = scaled_channels(planes * _EXPANSION, width)
            first_stride = (1, 1, 1) if index == 0 else (temporal_stride, 2, 2)
            layer = []
            for block in range(blocks):
                stride = first_stride if block == 0 else (1, 1, 1)
                layer.append(
                    Bottleneck(in_planes, mid, out, cardinality=_CARDINALITY, stride=stride)
                )
                in_planes = out
            layers.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.feature_channels = in_planes
        self.head = ConvHead(
            in_planes, num_classes, spatial_pool=spatial_pool, dropout=dropout_features
        )
        init_conv_bn(self, skip=self.head.classifier)  # Hara's initialisation
        pool = TemporalGeometry(receptive_field=3, stride=temporal_stride, padding=1)
        self.geometry = _then(
            _then(chain_geometry([self.conv1]), pool), chain_geometry(self._block_convs())
        )

    def _block_convs(self) -> Iterator[nn.Conv3d]:
        """The convolutions of the blocks' main paths, in order (after the max-pool)."""
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                assert isinstance(block, Bottleneck)
                yield from (block.conv1, block.conv2, block.conv3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 2048w, T', H/32, W/32)`` of a clip ``(B, 3, T, H, W)``."""
        x = self.relu(self.bn1(self.conv1(self.input_dropout(x))))  # (B, 64w, T, H/2, W/2)
        x = self.maxpool(x)  # (B, 64w, T / st, H/4, W/4)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@MODELS.register("resnext3d_101")
def resnext3d_101(
    num_classes: int,
    *,
    width: float = 1.0,
    temporal_stride: int = 1,
    dropout_input: float = 0.0,
    dropout_features: float = 0.0,
    spatial_pool: str = "avg",
) -> ResNeXt3D:
    """3D ResNeXt-101 (Hara et al.; cardinality 32), temporally dense by default.

    Args:
        num_classes: Classes ``K`` of the score map.
        width: Multiplier of the channel counts (1.0 is the published model).
        temporal_stride: 1: temporally dense, one score per frame (Ayral); 2: Hara's original.
        dropout_input: Dropout probability on the input clip in training.
        dropout_features: Dropout probability on the pooled features in training.
        spatial_pool: ``"avg"``, or ``"max"`` for the thesis's 2-step pooling.

    Raises:
        ConfigError: on an invalid option.
    """
    return ResNeXt3D(
        num_classes,
        width=width,
        temporal_stride=temporal_stride,
        dropout_input=dropout_input,
        dropout_features=dropout_features,
        spatial_pool=spatial_pool,
    )
