"""R(2+1)D-18 (Tran et al., 2018), temporally dense by default.

Layer for layer torchvision's ``r2plus1d_18``, with the same parameter names, so a torchvision
state dict (without ``fc``) loads directly: every 3x3x3 convolution of the 3D ResNet-18 is
factorised into a (1, 3, 3) spatial conv, BatchNorm, ReLU and a (3, 1, 1) temporal conv, with
``midplanes = in * out * 27 // (in * 9 + 3 * out)`` channels in between so that the parameter
count matches the 3D conv's. As for :mod:`vidfer.models.resnet3d`, ``temporal_stride=1`` removes
the temporal stride of layers 2-4 and a 1x1x1 convolution (:class:`ConvHead`) classifies.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from vidfer.models.base import HeadedVideoModel, chain_geometry
from vidfer.models.heads import ConvHead
from vidfer.models.options import check_model_options, init_conv_bn, scaled_channels
from vidfer.registry import MODELS

# Output channels of layers 1-4 at width 1.0, and of the stem's spatial conv (torchvision's).
_BASE_PLANES = (64, 128, 256, 512)
_STEM_MID = 45
_BLOCKS = (2, 2, 2, 2)


class Conv2Plus1D(nn.Sequential):
    """torchvision's ``Conv2Plus1D``: spatial (1, 3, 3) conv, BN, ReLU, temporal (3, 1, 1) conv.

    Args:
        in_planes: Input channels.
        out_planes: Output channels.
        midplanes: Channels between the two convs.
        spatial_stride: Stride of the spatial conv in height and width.
        temporal_stride: Stride of the temporal conv in time.
    """

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        midplanes: int,
        *,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
    ) -> None:
        s, t = spatial_stride, temporal_stride
        super().__init__(
            nn.Conv3d(in_planes, midplanes, (1, 3, 3), (1, s, s), (0, 1, 1), bias=False),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(midplanes, out_planes, (3, 1, 1), (t, 1, 1), (1, 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    """torchvision's video ``BasicBlock`` with :class:`Conv2Plus1D` convolutions.

    Args:
        in_planes: Input channels.
        planes: Output channels.
        spatial_stride: Stride in height and width of the first conv and the shortcut.
        temporal_stride: Stride in time of the first conv and the shortcut.
    """

    def __init__(
        self, in_planes: int, planes: int, *, spatial_stride: int = 1, temporal_stride: int = 1
    ) -> None:
        super().__init__()
        # torchvision computes midplanes from the block's input and output channels, for both.
        midplanes = (in_planes * planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * planes)
        self.conv1 = nn.Sequential(
            Conv2Plus1D(
                in_planes,
                planes,
                midplanes,
                spatial_stride=spatial_stride,
                temporal_stride=temporal_stride,
            ),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(Conv2Plus1D(planes, planes, midplanes), nn.BatchNorm3d(planes))
        self.downsample: nn.Sequential | None = None
        stride = (temporal_stride, spatial_stride, spatial_stride)
        if stride != (1, 1, 1) or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm3d(planes),
            )
        self.relu = nn.ReLU(inplace=True)

    def convs(self) -> Iterator[nn.Conv3d]:
        """The four convolutions of the main path, in order."""
        for conv in (self.conv1[0], self.conv2[0]):
            assert isinstance(conv, Conv2Plus1D)
            yield from (m for m in conv if isinstance(m, nn.Conv3d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_planes, T, H, W)`` -> ``(B, planes, T / st, H / s, W / s)``."""
        out = self.conv2(self.conv1(x))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class R2Plus1D(HeadedVideoModel):
    """R(2+1)D-18 with a fully convolutional head.

    Args:
        num_classes: Classes ``K`` of the score map.
        width: Multiplier of the channel counts 45 (stem), 64, 128, 256, 512 (each at least 4).
        temporal_stride: 1 for the temporally dense model; 2 for torchvision's original (stride
            2 in time in layers 2-4).
        in_channels: Channels ``C`` of the input clips.
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
        width: float = 1.0,
        temporal_stride: int = 1,
        in_channels: int = 3,
        dropout_input: float = 0.0,
        dropout_features: float = 0.0,
        spatial_pool: str = "avg",
    ) -> None:
        super().__init__()
        # dropout_features and spatial_pool are checked by ConvHead.
        check_model_options(
            num_classes=num_classes,
            width=width,
            temporal_stride=temporal_stride,
            original="torchvision's r2plus1d_18",
            in_channels=in_channels,
            dropout_input=dropout_input,
        )
        self.num_classes = num_classes
        planes = [scaled_channels(channels, width) for channels in _BASE_PLANES]
        stem_mid = scaled_channels(_STEM_MID, width)
        self.input_dropout = nn.Dropout(dropout_input)
        # torchvision's R2Plus1dStem.
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, planes[0], (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(planes[0]),
            nn.ReLU(inplace=True),
        )
        in_planes = (planes[0], *planes[:3])
        layers = []
        for i in range(4):
            first_stride = (1, 1) if i == 0 else (2, temporal_stride)
            first = BasicBlock(
                in_planes[i],
                planes[i],
                spatial_stride=first_stride[0],
                temporal_stride=first_stride[1],
            )
            rest = (BasicBlock(planes[i], planes[i]) for _ in range(1, _BLOCKS[i]))
            layers.append(nn.Sequential(first, *rest))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.feature_channels = planes[3]
        self.head = ConvHead(
            planes[3], num_classes, spatial_pool=spatial_pool, dropout=dropout_features
        )
        init_conv_bn(self, skip=self.head.classifier)
        self.geometry = chain_geometry(self._temporal_convs())

    def _temporal_convs(self) -> Iterator[nn.Conv3d]:
        """The convolutions on the longest path from input to features, in order."""
        yield from (m for m in self.stem if isinstance(m, nn.Conv3d))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                assert isinstance(block, BasicBlock)
                yield from block.convs()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 512w, T', H/16, W/16)`` of a clip ``(B, C, T, H, W)``."""
        x = self.stem(self.input_dropout(x))  # (B, 64w, T, H/2, W/2)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@MODELS.register("r2plus1d_18")
def r2plus1d_18(
    num_classes: int,
    *,
    width: float = 1.0,
    temporal_stride: int = 1,
    in_channels: int = 3,
    dropout_input: float = 0.0,
    dropout_features: float = 0.0,
    spatial_pool: str = "avg",
) -> R2Plus1D:
    """R(2+1)D-18 (torchvision's ``r2plus1d_18``), temporally dense by default.

    Args:
        num_classes: Classes ``K`` of the score map.
        width: Multiplier of the channel counts (1.0 is the published model).
        temporal_stride: 1: temporally dense, one score per frame; 2: torchvision's.
        in_channels: Channels of the input clips.
        dropout_input: Dropout probability on the input clip in training.
        dropout_features: Dropout probability on the pooled features in training.
        spatial_pool: ``"avg"``, or ``"max"`` for the thesis's 2-step pooling.

    Raises:
        ConfigError: on an invalid option.
    """
    return R2Plus1D(
        num_classes,
        width=width,
        temporal_stride=temporal_stride,
        in_channels=in_channels,
        dropout_input=dropout_input,
        dropout_features=dropout_features,
        spatial_pool=spatial_pool,
    )
