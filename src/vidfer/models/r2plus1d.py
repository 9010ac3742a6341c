"""R(2+1)D-18 (Tran et al., 2018), temporally dense by default.

Layer for layer torchvision's ``r2plus1d_18``, with the same parameter names, so a torchvision
state dict (without ``fc``) loads directly: every 3x3x3 convolution of the 3D ResNet-18 is
factorised into a (1, 3, 3) spatial conv, BatchNorm, ReLU and a (3, 1, 1) temporal conv, with
``midplanes = in * out * 27 // (in * 9 + 3 * out)`` channels in between so that the parameter
count matches the 3D conv's. As for :mod:`vidfer.models.resnet3d`, ``temporal_stride=1`` removes
the temporal stride of layers 2-4, ``temporal_padding=False`` the temporal padding of every
temporal conv (valid convolutions: each output step sees exactly its 35-frame window), and a
1x1x1 convolution (:class:`ConvHead`) classifies.
"""

from __future__ import annotations

from torch import nn

from vidfer.models.options import scaled_channels
from vidfer.models.resnet_blocks import BasicBlock, Stride, conv1x3x3
from vidfer.models.video_resnet import Architecture, ResNetOptions, VideoResNet, takes_options
from vidfer.registry import MODELS

# Output channels of the stem's spatial conv at width 1.0 (torchvision's).
_STEM_MID = 45


class Conv2Plus1D(nn.Sequential):
    """torchvision's ``Conv2Plus1D``: spatial (1, 3, 3) conv, BN, ReLU, temporal (3, 1, 1) conv.

    Args:
        in_planes: Input channels.
        out_planes: Output channels.
        midplanes: Channels between the two convs.
        stride: ``(time, height, width)`` stride: in space for the first conv, in time for the
            second.
        temporal_padding: Time padding of the temporal conv.
        groups: Groups of both convs.
    """

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        midplanes: int,
        *,
        stride: Stride = (1, 1, 1),
        temporal_padding: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            conv1x3x3(in_planes, midplanes, midplanes, stride=stride, groups=groups),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(
                midplanes,
                out_planes,
                (3, 1, 1),
                (stride[0], 1, 1),
                (temporal_padding, 0, 0),
                groups=groups,
                bias=False,
            ),
        )


def r2plus1d_stem(
    in_channels: int, out_channels: int, *, width: float, temporal_stride: int, padded: bool
) -> list[tuple[str, nn.Module]]:
    """torchvision's ``R2Plus1dStem``: a (1, 7, 7) conv with spatial stride 2 and a (3, 1, 1)
    conv, each followed by BN and ReLU."""
    mid = scaled_channels(_STEM_MID, width)
    stem = nn.Sequential(
        nn.Conv3d(in_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, out_channels, (3, 1, 1), padding=(1 if padded else 0, 0, 0), bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )
    return [("stem", stem)]


R2PLUS1D_18 = Architecture(
    original="torchvision's r2plus1d_18",
    stem=r2plus1d_stem,
    block=BasicBlock,
    conv=Conv2Plus1D,
    depths=(2, 2, 2, 2),
)


class R2Plus1D(VideoResNet):
    """R(2+1)D-18 with a fully convolutional head (:data:`R2PLUS1D_18`).

    Args:
        num_classes: Classes ``K`` of the score map.
        options: Width, temporal stride and padding, input channels, dropouts, spatial pooling.

    Raises:
        ConfigError: on an invalid option value.
    """

    def __init__(self, num_classes: int, options: ResNetOptions) -> None:
        super().__init__(num_classes, R2PLUS1D_18, options)


@MODELS.register("r2plus1d_18")
@takes_options()
def r2plus1d_18(num_classes: int, options: ResNetOptions) -> R2Plus1D:
    """R(2+1)D-18 (torchvision's ``r2plus1d_18``), temporally dense by default.

    Takes every option of :class:`~vidfer.models.video_resnet.ResNetOptions` as a keyword
    (``temporal_padding=False`` with the default ``temporal_stride=1`` scores exact 35-frame
    windows: one pass over a video equals scoring each window alone).

    Args:
        num_classes: Classes ``K`` of the score map.
        options: The options (given as keywords).

    Raises:
        ConfigError: on an invalid option.
    """
    return R2Plus1D(num_classes, options)
