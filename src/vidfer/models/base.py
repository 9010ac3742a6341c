"""The contract every video model honours.

A video model maps a clip ``(B, C, T, H, W)`` to a temporal score map ``(B, K, T')``. It says how
its outputs relate to input frames through :class:`TemporalGeometry`, so that a whole video can be
scored in one pass and every score mapped back to the frames it saw.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TemporalGeometry:
    """How output step ``t'`` of a score map relates to input frames.

    Output ``t'`` sees input frames ``[s, s + receptive_field)`` with ``s = t' * stride - padding``
    (indices outside ``[0, T)`` are padding).

    Attributes:
        receptive_field: Input frames seen by one output step.
        stride: Input frames between consecutive output steps.
        padding: Frames of temporal padding the model adds before the first frame.
        dense: True when one pass over a whole video is valid (fully convolutional in time);
            False for models that only score fixed-length clips (evaluated by sliding windows).
        global_time: True when an attention module mixes time over the whole input: one pass is
            still valid (and attends over the whole video) but no step sees only its window.
    """

    receptive_field: int
    stride: int
    padding: int
    dense: bool = True
    global_time: bool = False

    @property
    def exact_windows(self) -> bool:
        """True when a one-pass score equals scoring its window alone (no padding, dense)."""
        return self.dense and self.padding == 0 and not self.global_time

    def output_length(self, num_frames: int) -> int:
        """Length ``T'`` of the score map for an input of ``num_frames`` frames."""
        span = num_frames + 2 * self.padding - self.receptive_field
        return max(span // self.stride + 1, 0)

    def centre_frame(self, step: int) -> float:
        """Input frame (possibly fractional) at the centre of output ``step``'s receptive field."""
        return step * self.stride - self.padding + (self.receptive_field - 1) / 2


class VideoModel(nn.Module, abc.ABC):
    """Base class of vidfer's video models.

    Subclasses implement :meth:`forward_features` and :meth:`forward_head` and set ``geometry``,
    ``num_classes`` and ``feature_channels`` (the channels ``F`` of :meth:`forward_features`).
    """

    geometry: TemporalGeometry
    num_classes: int
    feature_channels: int

    @abc.abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, F, T', H', W')`` of a clip ``(B, C, T, H, W)``."""

    @abc.abstractmethod
    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Temporal score map ``(B, K, T')`` from backbone features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score map ``(B, K, T')`` of a clip ``(B, C, T, H, W)``."""
        return self.forward_head(self.forward_features(x))

    @abc.abstractmethod
    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the classifier head (trained with their own learning rate)."""

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not in the head."""
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.parameters() if id(p) not in head]


class HeadedVideoModel(VideoModel):
    """A video model whose whole classifier is one module, ``self.head``, applied to the features
    (e.g. a :class:`~vidfer.models.heads.ConvHead`)."""

    head: nn.Module

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Score map ``(B, K, T')`` of features ``(B, F, T', H', W')``."""
        return self.head(features)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``self.head``."""
        return list(self.head.parameters())
