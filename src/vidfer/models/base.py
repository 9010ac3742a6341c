"""The contract every video model honours.

A video model maps a clip ``(B, C, T, H, W)`` to a temporal score map ``(B, K, T')``. It says how
its outputs relate to input frames through :class:`TemporalGeometry`, so that a whole video can be
scored in one pass and every score mapped back to the frames it saw.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from vidfer.models.contract import InputContract


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


def temporal_params(layer: nn.Conv3d | nn.MaxPool3d) -> tuple[int, int, int]:
    """Temporal ``(kernel, stride, padding)`` of a 3D convolution or max-pool."""
    if isinstance(layer.padding, str):
        raise TypeError(f"{layer} uses string padding; give explicit integers")
    kernel, stride, padding = (
        value if isinstance(value, int) else value[0]
        for value in (layer.kernel_size, layer.stride, layer.padding)
    )
    return kernel, stride, padding


def chain_geometry(layers: Iterable[nn.Conv3d | nn.MaxPool3d]) -> TemporalGeometry:
    """Temporal geometry of a chain of convolutions (or max-pools) applied one after the other.

    Walking the chain from the input, with ``jump`` the input frames between two neighbouring
    positions of the current feature map: a layer with temporal kernel ``k``, stride ``s`` and
    padding ``p`` widens the receptive field by ``(k - 1) * jump`` frames, shifts the first window
    left by ``p * jump`` frames of padding, then multiplies ``jump`` by ``s``.

    For resnet3d_18 the chain is the stem and the two 3x3x3 convs of each of the 8 blocks: 17
    convs with ``k = 3``. Temporally dense (every ``s = 1``): receptive field 1 + 17 * 2 = 35,
    stride 1, padding 17 * 1 = 17 when padded and 0 when not. With torchvision's temporal stride 2
    in the first conv of layers 2-4, the jump is 1 for the stem, layer1 and the first conv of
    layer2 (6 convs), 2 for the next 4, 4 for the next 4 and 8 for the last 3: receptive field
    1 + 2 * (6 * 1 + 4 * 2 + 4 * 4 + 3 * 8) = 109, stride 2 ** 3 = 8 and padding
    6 * 1 + 4 * 2 + 4 * 4 + 3 * 8 = 54.
    Residual shortcuts are not in the chain: they see a subset of their block's window.
    """
    receptive_field, jump, padding = 1, 1, 0
    for layer in layers:
        kernel, stride, pad = temporal_params(layer)
        receptive_field += (kernel - 1) * jump
        padding += pad * jump
        jump *= stride
    return TemporalGeometry(receptive_field=receptive_field, stride=jump, padding=padding)


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

    def input_contract(self) -> InputContract:
        """What the architecture takes (:class:`~vidfer.models.contract.InputContract`).

        A model that is not temporally dense takes clips of its receptive field only; models
        built for a frame side (C3D's and FstCN's fully connected layers, torchvision's fixed
        clips) say so by overriding this.
        """
        if self.geometry.dense:
            return InputContract()
        return InputContract(frames=self.geometry.receptive_field, fixed_frames=True)

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
