"""MC3-18 (Tran et al., 2018): mixed convolutions, 3D in the stem and layer 1, 2D after.

Layer for layer torchvision's ``mc3_18``, with the same parameter names, so a torchvision state
dict (without ``fc``) loads directly: the 3x7x7 stem and layer 1 of the 3D ResNet-18
(:mod:`vidfer.models.resnet3d`), then layers 2-4 whose convolutions are (1, 3, 3), only spatial
(:func:`~vidfer.models.resnet_blocks.conv1x3x3`, shared with R(2+1)D).
torchvision's MC3-18 never strides in time (its 2D convolutions and their shortcuts stride in
height and width only), so it is temporally dense as published: one score per frame through a
1x1x1 convolution (:class:`~vidfer.models.heads.ConvHead`). Only the stem and layer 1 see
neighbouring frames: the receptive field is 1 + 2 * 5 = 11 frames, and without temporal padding
every output step sees exactly its own 11-frame window (one pass equals scoring each window).
"""

from __future__ import annotations

from vidfer.models.resnet3d import basic_stem
from vidfer.models.resnet_blocks import BasicBlock, conv1x3x3, conv3x3x3
from vidfer.models.video_resnet import Architecture, ResNetOptions, VideoResNet, takes_options
from vidfer.registry import MODELS

MC3_18 = Architecture(
    original="torchvision's mc3_18",
    stem=basic_stem,
    block=BasicBlock,
    conv=conv3x3x3,
    depths=(2, 2, 2, 2),
    stage_convs=(conv3x3x3, conv1x3x3, conv1x3x3, conv1x3x3),
)


class MC3(VideoResNet):
    """MC3-18 with a fully convolutional head (:data:`MC3_18`).

    Args:
        num_classes: Classes ``K`` of the score map.
        options: Width, temporal padding, input channels, dropouts, spatial pooling.

    Raises:
        ConfigError: on an invalid option value.
    """

    def __init__(self, num_classes: int, options: ResNetOptions) -> None:
        super().__init__(num_classes, MC3_18, options)


@MODELS.register("mc3_18")
@takes_options(without=("temporal_stride",))
def mc3_18(num_classes: int, options: ResNetOptions) -> MC3:
    """MC3-18 (torchvision's ``mc3_18``), temporally dense as published.

    Takes the options of :class:`~vidfer.models.video_resnet.ResNetOptions` as keywords, but
    ``temporal_stride`` (torchvision's MC3-18 has none); ``temporal_padding=False`` scores exact
    11-frame windows.

    Args:
        num_classes: Classes ``K`` of the score map.
        options: The options (given as keywords).

    Raises:
        ConfigError: on an invalid option.
    """
    return MC3(num_classes, options)
