"""torchvision's S3D, MViT-V2-S and Swin3D-T as vidfer models of fixed clips.

Each wrapper adopts torchvision's own backbone modules under their torchvision names (S3D's
``features``; MViT's ``conv_proj``, ``pos_encoding``, ``blocks`` and ``norm``; Swin3D's
``patch_embed``, ``pos_drop``, ``features`` and ``norm``), so a published state dict loads into
it (its classifier, ``classifier.*`` or ``head.*``, is left out), and classifies with vidfer's
head (:class:`~vidfer.models.heads.ConvHead`, a 1x1x1 convolution) and temporal pooling.

These models score clips of a fixed length (``clip_len`` frames of ``in_size`` x ``in_size``
pixels) one by one (:class:`~vidfer.models.fixed_clips.FixedClipVideo`). A clip's features
are S3D's and Swin3D's feature maps averaged over the clip's time (their spatial positions kept,
for the head's spatial pooling and attention modules) and MViT's class token (one position):
averaged over space by the head they are torchvision's own input to its classifier. With
torchvision's classifier weights in the head, a clip's score is torchvision's, exactly so for S3D
when its features have 2 x 7 x 7 positions (9 to 16 frames of 224 pixels; torchvision averages
the scores of its 2 x 7 x 7 windows).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models.fixed_clips import FixedClipVideo, fixed_clip_geometry
from vidfer.models.heads import ConvHead
from vidfer.models.options import check_model_options
from vidfer.registry import MODELS


class TorchvisionVideo(FixedClipVideo, abc.ABC):
    """A torchvision video backbone of fixed clips, scored clip by clip through a 1x1x1 conv.

    Subclasses name the torchvision model (``original``), its backbone modules (``backbone``),
    its feature channels and what clip sizes it takes, and compute a clip's feature vector.

    Args:
        num_classes: Classes ``K`` of the score map.
        clip_len: Frames of a clip (the receptive field and stride of the geometry).
        in_size: Height and width of a clip's frames.
        dropout_features: Dropout probability on a clip's features in training.

    Raises:
        ConfigError: on an invalid option, or a clip size the model does not take (naming
            ``clip_len`` or ``in_size``).
    """

    backbone: ClassVar[tuple[str, ...]]
    channels: ClassVar[int]
    frame_multiple: ClassVar[int] = 1
    size_multiple: ClassVar[int] = 1
    fixed_size: ClassVar[tuple[int, int] | None] = None

    def __init__(
        self, num_classes: int, *, clip_len: int, in_size: int, dropout_features: float
    ) -> None:
        super().__init__()
        check_model_options(num_classes=num_classes, width=1.0, dropout_features=dropout_features)
        self._check_clip(clip_len, in_size)
        self.num_classes = num_classes
        self.clip_len, self.in_size = clip_len, in_size
        net = self.torchvision_model()
        for name in self.backbone:
            self.add_module(name, getattr(net, name))
        self.feature_channels = self.channels
        self.head = ConvHead(self.channels, num_classes, dropout=dropout_features)
        self.geometry = fixed_clip_geometry(clip_len)

    def _check_clip(self, clip_len: int, in_size: int) -> None:
        """Raise a :class:`ConfigError` naming ``clip_len`` or ``in_size`` if not taken."""
        if self.fixed_size is not None:
            frames, size = self.fixed_size
            for option, value, needed in (
                ("clip_len", clip_len, frames),
                ("in_size", in_size, size),
            ):
                if value != needed:
                    raise ConfigError(
                        f"{option}={value}: {self.original} takes clips of {frames} frames of "
                        f"{size} x {size} pixels (its relative position embeddings are sized for "
                        f"them); set {option}: {needed}"
                    )
            return
        for option, value, multiple, unit in (
            ("clip_len", clip_len, self.frame_multiple, "frames"),
            ("in_size", in_size, self.size_multiple, "pixels"),
        ):
            if value < multiple or value % multiple:
                raise ConfigError(
                    f"{option}={value}: {self.original} takes a positive multiple of {multiple} "
                    f"{unit} (its {'temporal' if unit == 'frames' else 'spatial'} stride)"
                )

    @abc.abstractmethod
    def torchvision_model(self) -> nn.Module:
        """torchvision's model, randomly initialised, whose backbone modules are adopted."""


class S3D(TorchvisionVideo):
    """torchvision's S3D (Xie et al., 2018): separable 3D convolutions, 1024 features."""

    original = "torchvision's s3d"
    backbone = ("features",)
    channels = 1024
    frame_multiple = 8
    size_multiple = 32
    features: nn.Module

    def torchvision_model(self) -> nn.Module:
        """torchvision's ``s3d``."""
        from torchvision.models.video import s3d  # torchvision only when it is built

        return s3d(weights=None)

    def clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """The features averaged over time."""
        return self.features(clips).mean(dim=2)  # (N, 1024, T/8, H/32, W/32) -> (N, 1024, ., .)


class MViTV2S(TorchvisionVideo):
    """torchvision's MViT-V2-S (Li et al., 2022): a multiscale transformer of 16 x 224 x 224."""

    original = "torchvision's mvit_v2_s"
    backbone = ("conv_proj", "pos_encoding", "blocks", "norm")
    channels = 768
    fixed_size = (16, 224)
    conv_proj: nn.Module
    pos_encoding: nn.Module
    blocks: nn.ModuleList
    norm: nn.Module

    def torchvision_model(self) -> nn.Module:
        """torchvision's ``mvit_v2_s``; it keeps the token grid its blocks start from."""
        from torchvision.models.video import mvit_v2_s  # only when it is built

        net = mvit_v2_s(weights=None)
        encoding = net.pos_encoding
        self.token_grid = (encoding.temporal_size, *encoding.spatial_size)
        return net

    def clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """The class token after the last block and the norm, as torchvision classifies it."""
        x = self.conv_proj(clips)  # (N, 96, 8, 56, 56)
        x = x.flatten(2).transpose(1, 2)  # (N, 96, 8, 56, 56) -> (N, 8 * 56 * 56, 96)
        x = self.pos_encoding(x)  # (N, 1 + 8 * 56 * 56, 96): the class token first
        grid = self.token_grid
        for block in self.blocks:
            x, grid = block(x, grid)  # (N, 1 + tokens, channels) and the pooled grid
        return self.norm(x)[:, 0, :, None, None]  # (N, 1 + 8 * 7 * 7, 768) -> (N, 768, 1, 1)


class Swin3DT(TorchvisionVideo):
    """torchvision's Swin3D-T (Liu et al., 2022): a shifted-window video transformer."""

    original = "torchvision's swin3d_t"
    backbone = ("patch_embed", "pos_drop", "features", "norm")
    channels = 768
    frame_multiple = 2
    size_multiple = 32
    patch_embed: nn.Module
    pos_drop: nn.Module
    features: nn.Module
    norm: nn.Module

    def torchvision_model(self) -> nn.Module:
        """torchvision's ``swin3d_t``."""
        from torchvision.models.video import swin3d_t  # only when it is built

        return swin3d_t(weights=None)

    def clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """The normalised tokens averaged over time, channels first."""
        x = self.patch_embed(clips)  # (N, T/2, H/4, W/4, 96), channels last
        x = self.features(self.pos_drop(x))  # (N, T/2, H/32, W/32, 768)
        x = self.norm(x).mean(dim=1)  # (N, T/2, H/32, W/32, 768) -> (N, H/32, W/32, 768)
        return x.permute(0, 3, 1, 2)  # (N, H/32, W/32, 768) -> (N, 768, H/32, W/32)


@MODELS.register("s3d")
def s3d(
    num_classes: int, *, clip_len: int = 16, in_size: int = 224, dropout_features: float = 0.2
) -> S3D:
    """S3D (torchvision's ``s3d``) scoring clips of ``clip_len`` frames.

    Args:
        num_classes: Classes ``K`` of the score map.
        clip_len: Frames of a clip, a multiple of 8.
        in_size: Height and width of the frames, a multiple of 32 (224 published).
        dropout_features: Dropout on the features in training (torchvision's 0.2).

    Raises:
        ConfigError: on an invalid option.
    """
    return S3D(num_classes, clip_len=clip_len, in_size=in_size, dropout_features=dropout_features)


@MODELS.register("mvit_v2_s")
def mvit_v2_s(
    num_classes: int, *, clip_len: int = 16, in_size: int = 224, dropout_features: float = 0.5
) -> MViTV2S:
    """MViT-V2-S (torchvision's ``mvit_v2_s``): clips of 16 frames of 224 x 224 pixels only.

    Args:
        num_classes: Classes ``K`` of the score map.
        clip_len: Frames of a clip: 16.
        in_size: Height and width of the frames: 224.
        dropout_features: Dropout on the class token in training (torchvision's 0.5).

    Raises:
        ConfigError: on an invalid option, or another clip size.
    """
    return MViTV2S(
        num_classes, clip_len=clip_len, in_size=in_size, dropout_features=dropout_features
    )


@MODELS.register("swin3d_t")
def swin3d_t(
    num_classes: int, *, clip_len: int = 32, in_size: int = 224, dropout_features: float = 0.0
) -> Swin3DT:
    """Swin3D-T (torchvision's ``swin3d_t``) scoring clips of ``clip_len`` frames.

    Args:
        num_classes: Classes ``K`` of the score map.
        clip_len: Frames of a clip, a multiple of 2 (32 published).
        in_size: Height and width of the frames, a multiple of 32 (224 published).
        dropout_features: Dropout on the features in training (torchvision has none).

    Raises:
        ConfigError: on an invalid option.
    """
    return Swin3DT(
        num_classes, clip_len=clip_len, in_size=in_size, dropout_features=dropout_features
    )
