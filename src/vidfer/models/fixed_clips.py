"""The base of video models that score clips of a fixed size one by one.

Such a model (torchvision's S3D, MViT-V2-S and Swin3D-T; Hugging Face's VideoMAE and TimeSformer)
is not temporally dense: its geometry has a receptive field and a stride of ``clip_len``, a longer
input is cut into consecutive clips (``T' = T // clip_len``, the frames after the last whole clip
ignored) and evaluation slides windows over a video.
"""

from __future__ import annotations

import abc
from dataclasses import replace
from typing import ClassVar

import torch

from vidfer.errors import ConfigError
from vidfer.models.base import HeadedVideoModel, TemporalGeometry
from vidfer.models.contract import InputContract


def fixed_clip_geometry(clip_len: int) -> TemporalGeometry:
    """The geometry of a model that scores consecutive clips of ``clip_len`` frames."""
    return TemporalGeometry(receptive_field=clip_len, stride=clip_len, padding=0, dense=False)


class FixedClipVideo(HeadedVideoModel, abc.ABC):
    """A video model of clips of ``clip_len`` frames of ``in_size`` x ``in_size`` pixels.

    Subclasses set ``clip_len``, ``in_size`` and the geometry (:func:`fixed_clip_geometry`), name
    the published model (``original``, for messages) and compute one clip's features.
    """

    original: ClassVar[str]
    clip_len: int
    in_size: int

    def input_contract(self) -> InputContract:
        """Clips of ``clip_len`` frames of ``in_size`` pixels, nothing else."""
        return replace(super().input_contract(), size=self.in_size, fixed_size=True)

    @abc.abstractmethod
    def clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(N, F, H', W')`` of clips ``(N, C, clip_len, in_size, in_size)``."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, F, T', H', W')`` of the ``T' = T // clip_len`` clips of ``x``.

        Raises:
            ConfigError: if the frames are not ``in_size`` pixels or fewer than ``clip_len``.
        """
        batch, channels, frames, height, width = x.shape
        if (height, width) != (self.in_size, self.in_size):
            raise ConfigError(
                f"{self.original} was built for in_size={self.in_size} (frames of "
                f"{self.in_size} x {self.in_size} pixels), got {height} x {width}"
            )
        clips = frames // self.clip_len
        if clips == 0:
            raise ConfigError(
                f"{self.original} was built for clip_len={self.clip_len}, got {frames} frames"
            )
        x = x[:, :, : clips * self.clip_len]  # (B, C, T' * clip_len, H, W)
        x = x.reshape(batch, channels, clips, self.clip_len, height, width)
        x = x.transpose(1, 2).flatten(0, 1)  # (B * T', C, clip_len, H, W)
        features = self.clip_features(x)  # (B * T', F, H', W')
        features = features.reshape(batch, clips, *features.shape[1:])  # (B, T', F, H', W')
        return features.transpose(1, 2)  # (B, F, T', H', W')
