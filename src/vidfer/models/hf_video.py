"""Hugging Face ``transformers``' VideoMAE and TimeSformer encoders as vidfer models of fixed clips.

The optional extra ``pip install vidfer[hf]`` installs ``transformers``; it is imported only
when one of these families is built or its weights are read, and its absence is a one-line
error naming the extra (:mod:`vidfer.models.hf_families`: the binding to ``transformers``;
:mod:`vidfer.models.hf_weights`: reading the weights).

The wrappers adopt the encoder's modules: ``embeddings``, each transformer layer as a stage of
its own (``layer0``, ``layer1``, ...: the ``encoder.layer.<i>`` of ``transformers``, so that
``optim.freeze`` and ``optim.layer_decay`` act layer by layer) and the final ``layernorm`` where
the model has one. The source's classifier (``classifier.*``, VideoMAE's ``fc_norm.*``, the
pre-training decoder) is never loaded: vidfer's head (a 1x1x1 convolution) classifies the run's
classes and its temporal pooling pools the clips' scores. A clip's features are

- VideoMAE: the encoder's last tokens, averaged over the clip's time (tubelets) and kept on their
  ``image_size / patch_size`` grid: averaged over space by the head they are the mean of every
  token, VideoMAE's own ``use_mean_pooling`` input to its classifier (before its ``fc_norm``);
- TimeSformer: the class token after the final ``layernorm`` (one position), as its classifier
  reads it.

The architecture is a ``transformers`` config: ``model.params.architecture`` holds its fields
(left out: the published base model's, e.g. VideoMAE-B of 16 frames of 224 x 224 pixels).
``model.weights`` names a hub id (read with ``from_pretrained``: downloaded into the Hugging
Face cache when online, read from that cache with ``VIDFER_OFFLINE`` or ``HF_HUB_OFFLINE`` set)
or a local ``save_pretrained`` folder. Resolving a run's config (:mod:`vidfer.pipelines.clip`)
writes the weights' architecture into ``model.params.architecture``, their clip length
(``num_frames``) and frame size (``image_size``) into ``sampler.clip_len``, ``eval.clip_len``
and ``transforms.size`` and their processor's ``image_mean`` and ``image_std``
(``preprocessor_config.json``, else ``video_preprocessor_config.json``) into
``transforms.mean`` and ``transforms.std``, unless the config writes them; a written value that
differs is an error naming the option.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models.fixed_clips import FixedClipVideo, fixed_clip_geometry
from vidfer.models.heads import ConvHead
from vidfer.models.hf_families import TIMESFORMER, VIDEOMAE, Family, square_side
from vidfer.models.hf_weights import HubWeights
from vidfer.models.options import check_model_options
from vidfer.models.weights import DESCRIBING
from vidfer.registry import MODELS


class HFVideo(FixedClipVideo, abc.ABC):
    """A ``transformers`` video encoder, its clips scored one by one through a 1x1x1 conv.

    Args:
        num_classes: Classes ``K`` of the score map.
        architecture: Fields of the family's ``transformers`` config (None: its defaults).
        dropout_features: Dropout probability on a clip's features in training.

    Raises:
        ConfigError: on an invalid option, a field the config does not have, or ``transformers``
            missing.
    """

    family: ClassVar[Family]
    embeddings: nn.Module
    layernorm: nn.Module | None

    def __init__(
        self,
        num_classes: int,
        *,
        architecture: Mapping[str, Any] | None,
        dropout_features: float,
    ) -> None:
        super().__init__()
        check_model_options(num_classes=num_classes, width=1.0, dropout_features=dropout_features)
        config = self.family.config(architecture)
        _, model_class = self.family.classes()
        net = model_class(config)
        self.config = config
        self.num_classes = num_classes
        self.clip_len = int(config.num_frames)
        self.in_size = square_side(config.image_size, "model.params.architecture")
        self.patch_size = int(config.patch_size)
        self.embeddings = net.embeddings
        self.layers: list[nn.Module] = list(net.encoder.layer)
        for index, layer in enumerate(self.layers):
            self.add_module(f"layer{index}", layer)
        self.layernorm = net.layernorm
        self.feature_channels = int(config.hidden_size)
        self.head = ConvHead(self.feature_channels, num_classes, dropout=dropout_features)
        self.geometry = fixed_clip_geometry(self.clip_len)

    @abc.abstractmethod
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Input tokens ``(N, L, D)`` of ``transformers``' ``pixel_values`` ``(N, T, C, H, W)``."""

    @abc.abstractmethod
    def token_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(N, D, H', W')`` of the last tokens ``(N, L, D)``."""

    def tokens(self, clips: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden state ``(N, L, D)`` of clips ``(N, C, T, H, W)``: that of
        ``transformers``' base model on the same clips.

        Raises:
            ConfigError: if the clips have another channel count than the model takes.
        """
        if clips.shape[1] != self.config.num_channels:
            raise ConfigError(
                f"{self.original} takes {self.config.num_channels} channels, got "
                f"{clips.shape[1]}; prepare the videos in colour (or set num_channels in "
                "model.params.architecture)"
            )
        x = self.embed(clips.transpose(1, 2))  # (N, C, T, H, W) -> (N, T, C, H, W) -> (N, L, D)
        for layer in self.layers:
            out = layer(x)  # a tuple in some transformers versions
            x = out[0] if isinstance(out, tuple) else out
        return x if self.layernorm is None else self.layernorm(x)

    def clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """The features of the encoder's last tokens (:meth:`token_features`)."""
        return self.token_features(self.tokens(clips))


class VideoMAE(HFVideo):
    """VideoMAE (Tong et al., 2022): a ViT over space-time tubelets, MAE-pretrained."""

    original = "Hugging Face VideoMAE"
    family = VIDEOMAE

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Tubelet embeddings plus the fixed sine-cosine positions, no token masked."""
        return self.embeddings(pixel_values, None)  # (N, T/t * H/p * W/p, D)

    def token_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The tokens on their grid, averaged over the clip's tubelets."""
        grid = self.in_size // self.patch_size
        steps = self.clip_len // int(self.config.tubelet_size)
        # Tokens are in the order of the tubelet convolution's output: time, rows, columns.
        x = tokens.reshape(tokens.shape[0], steps, grid, grid, -1)  # (N, T/t, H/p, W/p, D)
        return x.mean(dim=1).permute(0, 3, 1, 2)  # (N, H/p, W/p, D) -> (N, D, H/p, W/p)


class TimeSformer(HFVideo):
    """TimeSformer (Bertasius et al., 2021): a ViT with divided space-time attention."""

    original = "Hugging Face TimeSformer"
    family = TIMESFORMER

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class token, patch embeddings, space and time positions."""
        return self.embeddings(pixel_values)  # (N, 1 + H/p * W/p * T, D)

    def token_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The class token, at one position."""
        return tokens[:, 0, :, None, None]  # (N, 1 + L, D) -> (N, D, 1, 1)


for _family in (VIDEOMAE, TIMESFORMER):
    DESCRIBING[_family.name] = HubWeights(_family)


@MODELS.register("videomae")
def videomae(
    num_classes: int,
    *,
    architecture: dict[str, Any] | None = None,
    dropout_features: float = 0.0,
) -> VideoMAE:
    """VideoMAE (``transformers``' ``VideoMAEModel``) scoring clips of ``num_frames`` frames.

    Args:
        num_classes: Classes ``K`` of the score map.
        architecture: ``VideoMAEConfig`` fields (None: VideoMAE-B, 16 frames of 224 pixels);
            read from ``model.weights`` when a run's config is resolved.
        dropout_features: Dropout on the features in training.

    Raises:
        ConfigError: on an invalid option, or ``transformers`` missing.
    """
    return VideoMAE(num_classes, architecture=architecture, dropout_features=dropout_features)


@MODELS.register("timesformer")
def timesformer(
    num_classes: int,
    *,
    architecture: dict[str, Any] | None = None,
    dropout_features: float = 0.0,
) -> TimeSformer:
    """TimeSformer (``transformers``' ``TimesformerModel``) scoring clips of ``num_frames``.

    Args:
        num_classes: Classes ``K`` of the score map.
        architecture: ``TimesformerConfig`` fields (None: TimeSformer-B, 8 frames of 224
            pixels); read from ``model.weights`` when a run's config is resolved.
        dropout_features: Dropout on the features in training.

    Raises:
        ConfigError: on an invalid option, or ``transformers`` missing.
    """
    return TimeSformer(num_classes, architecture=architecture, dropout_features=dropout_features)
