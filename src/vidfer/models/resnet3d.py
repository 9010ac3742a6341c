"""3D ResNet-18 (Hara et al.) and its temporally dense variant (Ayral's thesis, chapter 2).

The backbone is torchvision's ``r3d_18`` layer for layer, with the same parameter names, so a
torchvision state dict loads directly. Ayral removes the temporal stride from every convolution to
get one score per input frame ("temporally dense"), and replaces the fully connected classifier
with a 1x1x1 convolution (:class:`~vidfer.models.heads.ConvHead`) so that any video length can be
scored. Without temporal padding every output step sees exactly its own window of frames, so one
pass over a whole video equals scoring each window alone, only much faster.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.checkpoint import read_state_dict
from vidfer.models.base import HeadedVideoModel, chain_geometry, temporal_params
from vidfer.models.heads import ConvHead
from vidfer.models.options import check_model_options, init_conv_bn, scaled_channels
from vidfer.registry import MODELS

__all__ = ["BasicBlock", "ResNet3D", "chain_geometry", "resnet3d_18"]

# Output channels of layers 1-4 at width 1.0 (torchvision's r3d_18); the stem has layer1's.
_BASE_PLANES = (64, 128, 256, 512)
_RESNET18_BLOCKS = (2, 2, 2, 2)
# Keys of a source model's classifier: never loaded, the head is new.
_CLASSIFIER_PREFIXES = ("fc.", "head.")
# How many offending keys a CheckpointError lists.
_KEYS_SHOWN = 5


class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual shortcut (torchvision's ``BasicBlock`` names).

    Args:
        in_planes: Input channels.
        planes: Output channels.
        spatial_stride: Stride in height and width of the first conv and the shortcut.
        temporal_stride: Stride in time of the first conv and the shortcut.
        temporal_padding: Pad time by one frame in each conv; without it each conv drops one
            frame at each end and the shortcut is cropped to the same frames.
    """

    def __init__(
        self,
        in_planes: int,
        planes: int,
        *,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        temporal_padding: bool = True,
    ) -> None:
        super().__init__()
        pad_t = 1 if temporal_padding else 0
        stride = (temporal_stride, spatial_stride, spatial_stride)
        self.conv1 = nn.Sequential(
            nn.Conv3d(in_planes, planes, 3, stride=stride, padding=(pad_t, 1, 1), bias=False),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            nn.Conv3d(planes, planes, 3, padding=(pad_t, 1, 1), bias=False),
            nn.BatchNorm3d(planes),
        )
        self.downsample: nn.Sequential | None = None
        if stride != (1, 1, 1) or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm3d(planes),
            )
        self.relu = nn.ReLU(inplace=True)
        # Frames the main path loses at each end: ((k - 1) / 2 - p) per conv.
        self.crop = sum((k - 1) // 2 - p for k, _, p in map(temporal_params, self.convs()))

    def convs(self) -> tuple[nn.Conv3d, nn.Conv3d]:
        """The two 3x3x3 convolutions of the main path, in order."""
        first, second = self.conv1[0], self.conv2[0]
        assert isinstance(first, nn.Conv3d) and isinstance(second, nn.Conv3d)
        return first, second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output ``(B, planes, T_out, H_out, W_out)`` of ``x`` ``(B, in_planes, T, H, W)``."""
        out = self.conv2(self.conv1(x))
        shortcut = x
        if self.crop:
            # Unpadded convs only exist without temporal stride (ResNet3D enforces it), so the
            # centre frames of x line up with the main path's output frames one to one.
            shortcut = x[:, :, self.crop : x.shape[2] - self.crop]  # (B, C, T - 2 * crop, H, W)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.relu(out + shortcut)


def _make_layer(
    in_planes: int,
    planes: int,
    blocks: int,
    *,
    spatial_stride: int,
    temporal_stride: int,
    temporal_padding: bool,
) -> nn.Sequential:
    first = BasicBlock(
        in_planes,
        planes,
        spatial_stride=spatial_stride,
        temporal_stride=temporal_stride,
        temporal_padding=temporal_padding,
    )
    rest = [BasicBlock(planes, planes, temporal_padding=temporal_padding) for _ in range(1, blocks)]
    return nn.Sequential(first, *rest)


class ResNet3D(HeadedVideoModel):
    """3D ResNet with BasicBlocks and a fully convolutional head.

    Args:
        num_classes: Classes ``K`` of the score map.
        blocks_per_layer: BasicBlocks in each of the 4 layers (``(2, 2, 2, 2)``: ResNet-18).
        width: Multiplier of the channel counts 64, 128, 256, 512 (each at least 4).
        temporal_stride: 1 for the temporally dense model (no stride in time anywhere); 2 for
            torchvision's original (stride 2 in time in layers 2-4).
        temporal_padding: Pad time in every 3x3x3 conv (``T' = T`` for the dense model). Without
            padding each output step sees exactly ``geometry.receptive_field`` real frames.
        in_channels: Channels ``C`` of the input clips.
        dropout_input: Dropout probability on the input clip in training.
        dropout_features: Dropout probability on the pooled features in training.
        spatial_pool: ``"avg"`` or ``"max"`` pooling over ``(H', W')`` before the classifier.

    Raises:
        ConfigError: on an invalid option value or combination.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        blocks_per_layer: Sequence[int] = _RESNET18_BLOCKS,
        width: float = 1.0,
        temporal_stride: int = 1,
        temporal_padding: bool = True,
        in_channels: int = 3,
        dropout_input: float = 0.0,
        dropout_features: float = 0.0,
        spatial_pool: str = "avg",
    ) -> None:
        super().__init__()
        _check_options(
            num_classes=num_classes,
            blocks_per_layer=blocks_per_layer,
            width=width,
            temporal_stride=temporal_stride,
            temporal_padding=temporal_padding,
            in_channels=in_channels,
            dropout_input=dropout_input,
            dropout_features=dropout_features,
        )
        self.num_classes = num_classes
        planes = [scaled_channels(channels, width) for channels in _BASE_PLANES]
        pad_t = 1 if temporal_padding else 0

        self.input_dropout = nn.Dropout(dropout_input)
        # torchvision's BasicStem: no max-pooling, spatial stride 2 only.
        self.stem = nn.Sequential(
            nn.Conv3d(
                in_channels,
                planes[0],
                kernel_size=(3, 7, 7),
                stride=(1, 2, 2),
                padding=(pad_t, 3, 3),
                bias=False,
            ),
            nn.BatchNorm3d(planes[0]),
            nn.ReLU(inplace=True),
        )
        # Layer i maps planes[i - 1] to planes[i]; layers 2-4 halve height and width and, in
        # torchvision's original, time.
        in_planes = (planes[0], *planes[:3])
        spatial_strides = (1, 2, 2, 2)
        temporal_strides = (1, temporal_stride, temporal_stride, temporal_stride)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            _make_layer(
                in_planes[i],
                planes[i],
                blocks_per_layer[i],
                spatial_stride=spatial_strides[i],
                temporal_stride=temporal_strides[i],
                temporal_padding=temporal_padding,
            )
            for i in range(4)
        )
        self.feature_channels = planes[3]
        self.head = ConvHead(
            planes[3], num_classes, spatial_pool=spatial_pool, dropout=dropout_features
        )
        init_conv_bn(self, skip=self.head.classifier)
        self.geometry = chain_geometry(self._temporal_convs())

    def _layers(self) -> tuple[nn.Sequential, ...]:
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def _temporal_convs(self) -> Iterator[nn.Conv3d]:
        """The convolutions on the longest path from input to features, in order."""
        stem_conv = self.stem[0]
        assert isinstance(stem_conv, nn.Conv3d)
        yield stem_conv
        for layer in self._layers():
            for block in layer:
                assert isinstance(block, BasicBlock)
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
        x = self.stem(self.input_dropout(x))  # (B, 64w, T, H/2, W/2) when padded
        for layer in self._layers():
            x = layer(x)
        return x  # (B, 512w, T', H/16, W/16)

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
        wanted = {
            key: value for key, value in state.items() if not key.startswith(_CLASSIFIER_PREFIXES)
        }
        target = {
            key: value
            for key, value in self.state_dict().items()
            if not key.startswith(_CLASSIFIER_PREFIXES)
        }
        problems = _key_problems(wanted, target)
        if problems:
            raise CheckpointError(
                f"pretrained weights {source} do not match this model's backbone (a torchvision "
                f"r3d_18 needs width=1.0 and in_channels=3): {'; '.join(problems)}"
            )
        # Not strict only because the head is absent from the source on purpose.
        self.load_state_dict(wanted, strict=False)


def _key_problems(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> list[str]:
    """Human-readable differences between two state dicts (a few keys of each kind)."""
    problems = []
    missing = sorted(target.keys() - source.keys())
    unexpected = sorted(source.keys() - target.keys())
    mismatched = [
        f"{key} {tuple(source[key].shape)} vs {tuple(target[key].shape)}"
        for key in sorted(source.keys() & target.keys())
        if source[key].shape != target[key].shape
    ]
    for kind, keys in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched)):
        if keys:
            more = f" and {len(keys) - _KEYS_SHOWN} more" if len(keys) > _KEYS_SHOWN else ""
            problems.append(f"{kind}: {', '.join(keys[:_KEYS_SHOWN])}{more}")
    return problems


def _check_options(
    *,
    num_classes: int,
    blocks_per_layer: Sequence[int],
    width: float,
    temporal_stride: int,
    temporal_padding: bool,
    in_channels: int,
    dropout_input: float,
    dropout_features: float,
) -> None:
    check_model_options(
        num_classes=num_classes,
        width=width,
        temporal_stride=temporal_stride,
        original="torchvision's r3d_18",
        in_channels=in_channels,
        dropout_input=dropout_input,
        dropout_features=dropout_features,
    )
    if len(blocks_per_layer) != 4 or min(blocks_per_layer) < 1:
        raise ConfigError(f"blocks_per_layer={blocks_per_layer} needs 4 counts of at least 1")
    if not temporal_padding and temporal_stride != 1:
        raise ConfigError(
            f"temporal_padding=False needs temporal_stride=1 (got {temporal_stride}): strided "
            f"unpadded convs would not line up with the residual shortcuts; set temporal_stride=1 "
            f"or temporal_padding=True"
        )


@MODELS.register("resnet3d_18")
def resnet3d_18(
    num_classes: int,
    *,
    width: float = 1.0,
    temporal_stride: int = 1,
    temporal_padding: bool = True,
    in_channels: int = 3,
    dropout_input: float = 0.0,
    dropout_features: float = 0.0,
    spatial_pool: str = "avg",
    pretrained: str | None = None,
) -> ResNet3D:
    """3D ResNet-18 (torchvision's ``r3d_18``), temporally dense by default.

    Args:
        num_classes: Classes ``K`` of the score map.
        width: Multiplier of the channel counts (1.0 is the published model).
        temporal_stride: 1: temporally dense, one score per frame (Ayral); 2: torchvision's.
        temporal_padding: Pad time in the 3x3x3 convs; False scores exact 35-frame windows.
        in_channels: Channels of the input clips.
        dropout_input: Dropout probability on the input clip in training.
        dropout_features: Dropout probability on the pooled features in training.
        spatial_pool: ``"avg"``, or ``"max"`` for the thesis's 2-step pooling.
        pretrained: Local state-dict file of a torchvision ``r3d_18`` (its ``fc`` is dropped).

    Raises:
        ConfigError: on an invalid option, or ``pretrained`` with ``width != 1.0``.
        CheckpointError: if the pretrained file is missing or does not match.
    """
    if pretrained is not None and width != 1.0:
        raise ConfigError(
            f"pretrained weights need width=1.0 (got width={width}); drop pretrained or the width"
        )
    # The builder reads the file, so that the model itself never touches the file system; read
    # it first, so that a bad path fails before the full-width model is allocated.
    state = None if pretrained is None else read_state_dict(pretrained)
    model = ResNet3D(
        num_classes,
        blocks_per_layer=_RESNET18_BLOCKS,
        width=width,
        temporal_stride=temporal_stride,
        temporal_padding=temporal_padding,
        in_channels=in_channels,
        dropout_input=dropout_input,
        dropout_features=dropout_features,
        spatial_pool=spatial_pool,
    )
    if state is not None:
        model.load_backbone(state, source=str(pretrained))
    return model
