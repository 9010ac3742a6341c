"""3D ResNet-18 (Hara et al.) and its temporally dense variant (Ayral's thesis, chapter 2).

The backbone is torchvision's ``r3d_18`` layer for layer, with the same parameter names, so a
torchvision state dict loads directly. Ayral removes the temporal stride from every convolution to
get one score per input frame ("temporally dense"), and replaces the fully connected classifier
with a 1x1x1 convolution (:class:`~vidfer.models.heads.ConvHead`) so that any video length can be
scored. Without temporal padding every output step sees exactly its own window of frames, so one
pass over a whole video equals scoring each window alone, only much faster. The skeleton is
:class:`~vidfer.models.video_resnet.VideoResNet`; :func:`chain_geometry` is re-exported from
:mod:`vidfer.models.base`.
"""

from __future__ import annotations

from torch import nn

from vidfer.errors import ConfigError
from vidfer.io.checkpoint import read_state_dict
from vidfer.models.base import chain_geometry
from vidfer.models.resnet_blocks import BasicBlock, conv3x3x3
from vidfer.models.video_resnet import Architecture, ResNetOptions, VideoResNet, takes_options
from vidfer.registry import MODELS

__all__ = ["RESNET3D_18", "ResNet3D", "chain_geometry", "resnet3d_18"]


def basic_stem(
    in_channels: int, out_channels: int, *, width: float, temporal_stride: int, padded: bool
) -> list[tuple[str, nn.Module]]:
    """torchvision's ``BasicStem``: a 3x7x7 conv with spatial stride 2 (no max-pool), BN, ReLU."""
    conv = nn.Conv3d(
        in_channels,
        out_channels,
        kernel_size=(3, 7, 7),
        stride=(1, 2, 2),
        padding=(1 if padded else 0, 3, 3),
        bias=False,
    )
    return [("stem", nn.Sequential(conv, nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True)))]


RESNET3D_18 = Architecture(
    original="torchvision's r3d_18",
    stem=basic_stem,
    block=BasicBlock,
    conv=conv3x3x3,
    depths=(2, 2, 2, 2),
)


class ResNet3D(VideoResNet):
    """3D ResNet-18 with a fully convolutional head (:data:`RESNET3D_18`).

    Args:
        num_classes: Classes ``K`` of the score map.
        options: Width, temporal stride and padding, input channels, dropouts, spatial pooling.

    Raises:
        ConfigError: on an invalid option value or combination.
    """

    def __init__(self, num_classes: int, options: ResNetOptions) -> None:
        super().__init__(num_classes, RESNET3D_18, options)


@MODELS.register("resnet3d_18")
@takes_options()
def resnet3d_18(
    num_classes: int, options: ResNetOptions, *, pretrained: str | None = None
) -> ResNet3D:
    """3D ResNet-18 (torchvision's ``r3d_18``), temporally dense by default.

    Takes every option of :class:`~vidfer.models.video_resnet.ResNetOptions` as a keyword
    (``temporal_padding=False`` scores exact 35-frame windows), and:

    Args:
        num_classes: Classes ``K`` of the score map.
        options: The options (given as keywords).
        pretrained: Local state-dict file of a torchvision ``r3d_18`` (its ``fc`` is dropped).

    Raises:
        ConfigError: on an invalid option, or ``pretrained`` with ``width != 1.0``.
        CheckpointError: if the pretrained file is missing or does not match.
    """
    if pretrained is not None and options.width != 1.0:
        raise ConfigError(
            f"pretrained weights need width=1.0 (got width={options.width}); drop pretrained or "
            f"the width"
        )
    # The builder reads the file, so that the model itself never touches the file system; read
    # it first, so that a bad path fails before the full-width model is allocated.
    state = None if pretrained is None else read_state_dict(pretrained)
    model = ResNet3D(num_classes, options)
    if state is not None:
        model.load_backbone(state, source=str(pretrained))
    return model
