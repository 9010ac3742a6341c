"""C3D (Tran et al., 2015): 8 3x3x3 convolutions, 5 max-pools and 2 fully connected layers.

The fully connected layers fix the clip size: C3D scores 16-frame clips (of ``in_size`` pixels,
112 in the paper) and its geometry is not dense (receptive field 16, stride 16). A longer input
is cut into consecutive 16-frame windows, each scored alone (frames after the last whole window
are ignored), so ``T' = T // 16``; evaluation slides windows over a video. The last layer (fc8)
is the 1x1x1 convolution of :class:`ConvHead`, equivalent to a fully connected layer.

``dense=True`` is the temporally dense variant Ayral's thesis applies to every model (as
``temporal_stride=1, temporal_padding=False`` does for the 3D ResNets): the temporal stride of
pool2-pool5 is removed (their 2-frame kernel kept, stride 1), the convolutions are not padded in
time ("valid"), and fc6 and fc7 are applied at every time step to the ``(512, 4, 4)`` grid they
read in the published model. The parameters keep their names and shapes, so the Sports-1M
weights (:mod:`vidfer.models.published`) load into it unchanged; the function differs (no
layer's input is subsampled in time any more), so it is fine-tuned like the dense ResNets. One
output step sees 1 + 8 * 2 + 4 * 1 = 21 frames with stride 1 and no padding, so one pass over a
video equals scoring each of its 21-frame windows alone.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models.base import HeadedVideoModel, TemporalGeometry, chain_geometry
from vidfer.models.contract import InputContract
from vidfer.models.heads import ConvHead
from vidfer.models.options import MAX_SIZE, check_model_options, scaled_channels
from vidfer.registry import MODELS

CLIP_FRAMES = 16
# Conv channels, "M" for a max-pool (the first pools space only, pool5 pads space by 1).
_CFG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
_FC = 4096


class C3D(HeadedVideoModel):
    """C3D with its fully connected layers fc6 and fc7, and a 1x1x1 classifier (fc8).

    Args:
        num_classes: Classes ``K``.
        width: Multiplier of the conv channels and of the 4096 fc units (each at least 4).
        dropout_features: Dropout after fc6 and after fc7 in training (0.5 in the paper).
        in_size: Spatial size of the clips (square); sets the input size of fc6. Clips of another
            size are average-pooled to the grid fc6 expects (an identity at ``in_size``).
        dense: The temporally dense variant (no temporal stride, no temporal padding, one score
            per 21-frame window, stride 1) instead of one score per 16-frame clip.

    Raises:
        ConfigError: on an invalid option.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        width: float = 1.0,
        dropout_features: float = 0.0,
        in_size: int = 112,
        dense: bool = False,
    ) -> None:
        super().__init__()
        _check_options(num_classes, width, dropout_features, in_size)
        self.num_classes = num_classes
        self.dense = dense
        pad_t, stride_t = (0, 1) if dense else (1, 2)
        layers: list[nn.Module] = []
        channels, size, pools = 3, in_size, 0
        for item in _CFG:
            if isinstance(item, int):
                out = scaled_channels(item, width)
                conv = nn.Conv3d(channels, out, 3, padding=(pad_t, 1, 1))
                layers += [conv, nn.ReLU(inplace=True)]
                channels = out
            elif pools == 0:
                layers.append(nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2)))
                pools, size = 1, size // 2
            else:
                pools += 1
                pad = 1 if pools == 5 else 0  # pool5: 7x7 -> 4x4 at 112 pixels, as in Caffe
                layers.append(nn.MaxPool3d(2, stride=(stride_t, 2, 2), padding=(0, pad, pad)))
                size = (size + 2 * pad - 2) // 2 + 1
        self.features = nn.Sequential(*layers)
        # (1, size, size): the grid fc6 reads; adaptive pooling is an identity on it. The dense
        # variant keeps every time step.
        self.grid = nn.AdaptiveAvgPool3d((None if dense else 1, size, size))
        fc = scaled_channels(_FC, width)
        self.fc6 = nn.Linear(channels * size * size, fc)
        self.fc7 = nn.Linear(fc, fc)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout_features)
        self.feature_channels = fc
        self.head = ConvHead(fc, num_classes, dropout=dropout_features)
        self.geometry = (
            chain_geometry(m for m in layers if isinstance(m, nn.Conv3d | nn.MaxPool3d))
            if dense
            else TemporalGeometry(
                receptive_field=CLIP_FRAMES, stride=CLIP_FRAMES, padding=0, dense=False
            )
        )
        self.in_size = in_size

    def input_contract(self) -> InputContract:
        """16-frame clips, of ``in_size`` pixels as fc6 is sized (another size is pooled)."""
        return replace(super().input_contract(), size=self.in_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 features ``(B, 4096w, T', 1, 1)``: of the ``T' = T // 16`` windows of ``x``, or
        of its ``T' = T - 20`` steps for the dense variant.

        Raises:
            ConfigError: if the clip has fewer than 16 frames (21 for the dense variant).
        """
        if self.dense:
            return self._dense_features(x)
        batch, channels, frames, height, width = x.shape
        windows = frames // CLIP_FRAMES
        if windows == 0:
            raise ConfigError(f"C3D scores clips of {CLIP_FRAMES} frames, got {frames}")
        x = x[:, :, : windows * CLIP_FRAMES]  # (B, C, T' * 16, H, W)
        x = x.reshape(batch, channels, windows, CLIP_FRAMES, height, width)
        x = x.transpose(1, 2).flatten(0, 1)  # (B * T', C, 16, H, W)
        x = self.grid(self.features(x)).flatten(1)  # (B * T', 512w * h * w)
        x = self.dropout(self.relu(self.fc6(x)))  # (B * T', 4096w)
        x = self.relu(self.fc7(x))  # (B * T', 4096w)
        x = x.reshape(batch, windows, -1).transpose(1, 2)  # (B, 4096w, T')
        return x[..., None, None]  # (B, 4096w, T', 1, 1)

    def _dense_features(self, x: torch.Tensor) -> torch.Tensor:
        """fc6 and fc7 at every time step of the dense variant's conv features."""
        needed = self.geometry.receptive_field
        if x.shape[2] < needed:
            raise ConfigError(
                f"the dense C3D needs clips of at least {needed} frames, got {x.shape[2]}; use "
                f"longer clips (sampler.clip_len) or dense: false"
            )
        x = self.grid(self.features(x))  # (B, 512w, T', h, w)
        x = x.transpose(1, 2).flatten(2)  # (B, T', 512w * h * w), fc6's order per step
        x = self.dropout(self.relu(self.fc6(x)))  # (B, T', 4096w)
        x = self.relu(self.fc7(x)).transpose(1, 2)  # (B, 4096w, T')
        return x[..., None, None]  # (B, 4096w, T', 1, 1)


def _check_options(num_classes: int, width: float, dropout: float, in_size: int) -> None:
    check_model_options(num_classes=num_classes, width=width, dropout_features=dropout)
    if not 32 <= in_size <= MAX_SIZE:
        raise ConfigError(f"in_size={in_size} must be in [32, {MAX_SIZE}] (112 in the paper)")


@MODELS.register("c3d")
def c3d(
    num_classes: int,
    *,
    width: float = 1.0,
    dropout_features: float = 0.0,
    in_size: int = 112,
    dense: bool = False,
) -> C3D:
    """C3D of Tran et al. (2015), scoring 16-frame clips, or its temporally dense variant.

    Args:
        num_classes: Classes ``K``.
        width: Multiplier of the conv channels and fc units (1.0 is the published model).
        dropout_features: Dropout after fc6 and fc7 in training.
        in_size: Spatial size of the input clips (112 in the paper).
        dense: The temporally dense variant (a score per 21-frame window, stride 1).

    Raises:
        ConfigError: on an invalid option.
    """
    return C3D(
        num_classes, width=width, dropout_features=dropout_features, in_size=in_size, dense=dense
    )
