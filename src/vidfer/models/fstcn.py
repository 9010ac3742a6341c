"""FstCN: factorized spatio-temporal convolutional networks (Sun et al., ICCV 2015).

A 3D kernel restricted to the Kronecker form ``K = K_xy (x) k_t`` (eq. 2) is a 2D spatial
convolution of every frame followed by a 1D temporal convolution at every position (eq. 3,
:func:`factorized_conv3d`). FstCN builds on it (§2.1, §2.5):

- lower spatial convolutional layers (SCL) on every frame: Conv(96,7,2)-ReLU-LRN-Pool(3,2)-
  Conv(256,5,2)-ReLU-LRN-Pool(3,2)-Conv(512,3,1)-Conv(512,3,1), LRN ``k=2, n=5, alpha=5e-4,
  beta=0.75``;
- the TCL path: Conv(128,3,1)-Pool(3,3) on every frame of the difference clip, the
  transformation-and-permutation (T-P) operator (:class:`TPOperator`), and the temporal
  convolutional layer: two parallel convolutions (3x3 and 5x5 over time x feature, 32 maps
  each, dropout 0.5, no pooling);
- the parallel SCL path: Conv(128,3,1)-Pool(3,3) on one frame of the appearance clip (a random
  one in training, the middle one at test time);
- FC 4096 and FC 2048 on each path, concatenated, FC 2048, classifier.

The model takes a clip pair packed in time, ``(B, 3, 2 * l_t, H, W)``: the appearance clip's
``l_t`` frames, then the ``l_t`` frames ``d_t`` later, as drawn by the ``clip_pairs`` sampler; it
computes the difference clip ``|V(t) - V(t + d_t)|`` (eq. 4) itself. Convolutions are padded
``k // 2`` (the paper does not give paddings). ``width`` scales every layer for CPU runs.

§2.3 pre-trains the lower SCLs with an auxiliary classifier on single frames (ImageNet, then
frames of the training videos) before training the whole network. Here the auxiliary network
is the frame CNN ``fstcn_scl`` (:class:`FstCNFrames`), trained by ``vidfer train-frames`` on the
training videos' frames (ImageNet weights are not obtainable offline); ``scl_init`` then starts
FstCN's lower SCLs from that run.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from vidfer.config import TransformConfig
from vidfer.errors import CheckpointError, ConfigError
from vidfer.models.base import TemporalGeometry, VideoModel
from vidfer.models.contract import InputContract
from vidfer.models.frame_cnns import FrameCNN, register_frame_cnn
from vidfer.models.options import MAX_SIZE, check_model_options, scaled_channels
from vidfer.registry import MODELS

PATHS = ("both", "scl", "tcl")


def factorized_conv3d(
    video: torch.Tensor, spatial: torch.Tensor, temporal: torch.Tensor
) -> torch.Tensor:
    """Eq. (3): a 2D convolution of every frame, then a 1D convolution along time at every
    position; equal to a 3D convolution with the kernel ``temporal (x) spatial`` (eq. 2).

    Args:
        video: ``(B, 1, T, H, W)``.
        spatial: 2D kernel ``(kh, kw)`` (odd sizes; "same" padding).
        temporal: 1D kernel ``(kt,)`` (odd size; "same" padding).

    Returns:
        ``(B, 1, T, H, W)``.
    """
    batch, _, frames, height, width = video.shape
    kh, kw = spatial.shape
    per_frame = video.transpose(1, 2).reshape(batch * frames, 1, height, width)  # (B*T, 1, H, W)
    f_s = F.conv2d(per_frame, spatial[None, None], padding=(kh // 2, kw // 2))
    # (B*T, 1, H, W) -> (B, T, H*W) -> (B*H*W, 1, T): one temporal series per position.
    series = f_s.view(batch, frames, height * width).transpose(1, 2).reshape(-1, 1, frames)
    f_st = F.conv1d(series, temporal[None, None], padding=len(temporal) // 2)  # (B*H*W, 1, T)
    # (B*H*W, 1, T) -> (B, H, W, T) -> (B, 1, T, H, W)
    return f_st.view(batch, height, width, frames).permute(0, 3, 1, 2).unsqueeze(1)


class TPOperator(nn.Module):
    """Transformation and permutation (§2.1).

    Features ``(B, T, f, x, y)`` of the frames are vectorised over space (``x * y`` positions),
    rearranged so that convolution runs over time and feature channels with the positions as
    input maps, and the feature channels are recombined by a learned ``f x f'`` matrix ``P``
    initialised from a Gaussian: output ``(B, x * y, T, f')``.

    Args:
        channels: ``f``.
        out_channels: ``f'`` (the paper: 128 x 128).
    """

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.permutation = nn.Parameter(torch.randn(channels, out_channels) / channels**0.5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, frames, channels, height, width = features.shape
        vectorised = features.reshape(batch, frames, channels, height * width)  # (B, T, f, xy)
        transformed = vectorised.permute(0, 3, 1, 2)  # (B, xy, T, f)
        return transformed @ self.permutation  # (B, xy, T, f) @ (f, f') -> (B, xy, T, f')


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)


def _conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)


def lower_scls(width: float) -> nn.Sequential:
    """The four lower SCLs, ``(B, 3, H, W) -> (B, 512 * width, h, w)``."""
    c96, c256, c512 = (scaled_channels(c, width, minimum=1) for c in (96, 256, 512))
    return nn.Sequential(
        _conv(3, c96, 7, 2), nn.ReLU(inplace=True), _lrn(), nn.MaxPool2d(3, 2),
        _conv(c96, c256, 5, 2), nn.ReLU(inplace=True), _lrn(), nn.MaxPool2d(3, 2),
        _conv(c256, c512, 3, 1), nn.ReLU(inplace=True),
        _conv(c512, c512, 3, 1), nn.ReLU(inplace=True),
    )  # fmt: skip


def _upper_scl(c_in: int, c_out: int, side: int) -> nn.Sequential:
    """Conv(128,3,1)-ReLU-Pool(3,3) (padded 1: the paper's 12x12 -> 4x4 at 204 pixels), then a
    max pool to the ``side x side`` grid the FC layers expect (the identity at ``in_size``)."""
    return nn.Sequential(
        _conv(c_in, c_out, 3, 1),
        nn.ReLU(),
        nn.MaxPool2d(3, 3, padding=1),
        nn.AdaptiveMaxPool2d(side),
    )


def _fc(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, c_out), nn.ReLU(inplace=True), nn.Dropout(dropout))


@MODELS.register("fstcn")
class FstCN(VideoModel):
    """The factorized spatio-temporal ConvNet.

    Args:
        num_classes: Classes ``K``.
        width: Multiplier of every layer's channels and FC units (1.0: the paper).
        clip_len: ``l_t``, frames per clip of the pair (the input has ``2 * clip_len`` frames).
        in_size: Input height and width the FC layers are sized for (the paper: 204); other
            sizes are max-pooled to the same grid before them.
        paths: ``both`` (FstCN), ``scl`` or ``tcl`` (one path alone, the ablation of Table 2).
        dropout: Dropout of the TCL convolutions and the FC layers (0.5).
        scl_init: A ``vidfer train-frames`` run of the ``fstcn_scl`` frame CNN of the same
            ``width``: the lower SCLs start from its weights (§2.3's pre-training).

    Raises:
        ConfigError: on an invalid option.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        width: float = 1.0,
        clip_len: int = 5,
        in_size: int = 204,
        paths: str = "both",
        dropout: float = 0.5,
        scl_init: str | None = None,
    ) -> None:
        super().__init__()
        check_model_options(num_classes=num_classes, width=width, dropout=dropout)
        if paths not in PATHS:
            raise ConfigError(f"fstcn: paths {paths!r} must be one of {', '.join(PATHS)}")
        if not (1 <= clip_len <= MAX_SIZE and 32 <= in_size <= MAX_SIZE):
            raise ConfigError(
                f"fstcn: clip_len={clip_len} must be in [1, {MAX_SIZE}] and in_size={in_size} "
                f"in [32, {MAX_SIZE}]"
            )
        self.num_classes, self.clip_len, self.paths = num_classes, clip_len, paths
        self.in_size = in_size
        c512, c128 = scaled_channels(512, width, minimum=1), scaled_channels(128, width, minimum=1)
        self.lower = lower_scls(width)
        if scl_init is not None:
            self._load_lower(scl_init)
        with torch.no_grad():
            side = self.lower(torch.zeros(1, 3, in_size, in_size)).shape[-1]
        side = (side - 1) // 3 + 1  # after Pool(3, 3) (padded 1, so that tiny inputs work)
        if side < 1:
            raise ConfigError(f"fstcn: in_size={in_size} is too small for the layers")
        positions = side * side
        fc1, fc2 = scaled_channels(4096, width, minimum=1), scaled_channels(2048, width, minimum=1)
        self.feature_channels = c512
        if paths != "scl":
            self.tcl_scl = _upper_scl(c512, c128, side)
            self.tp = TPOperator(c128, c128)
            maps = scaled_channels(32, width, minimum=1)
            self.tcl3 = nn.Sequential(
                nn.Conv2d(positions, maps, 3, padding=1), nn.ReLU(), nn.Dropout(dropout)
            )
            self.tcl5 = nn.Sequential(
                nn.Conv2d(positions, maps, 5, padding=2), nn.ReLU(), nn.Dropout(dropout)
            )
            self.tcl_fc = nn.Sequential(
                _fc(2 * maps * clip_len * c128, fc1, dropout), _fc(fc1, fc2, dropout)
            )
        if paths != "tcl":
            self.scl = _upper_scl(c512, c128, side)
            self.scl_fc = nn.Sequential(_fc(c128 * positions, fc1, dropout), _fc(fc1, fc2, dropout))
        joined = fc2 * (2 if paths == "both" else 1)
        self.joint = _fc(joined, fc2, dropout)
        self.classifier = nn.Linear(fc2, num_classes)
        # One score per clip pair; pairs are drawn by the clip_pairs sampler, evaluated by views.
        self.geometry = TemporalGeometry(
            receptive_field=2 * clip_len, stride=2 * clip_len, padding=0, dense=False
        )

    def input_contract(self) -> InputContract:
        """Clip pairs of ``2 x clip_len`` frames, of ``in_size`` pixels as the FC layers are
        sized (another size is pooled)."""
        return replace(super().input_contract(), size=self.in_size)

    def _load_lower(self, run: str) -> None:
        from vidfer.models.frame_runs import load_frame_run  # frame_runs imports this module

        try:
            frames, _ = load_frame_run(run)
        except CheckpointError as error:
            raise ConfigError(f"fstcn: scl_init: {error}") from None
        if not isinstance(frames, FstCNFrames):
            raise ConfigError(f"fstcn: scl_init {run} is not a run of the fstcn_scl frame CNN")
        try:
            self.lower.load_state_dict(frames.lower.state_dict())
        except RuntimeError:
            raise ConfigError(
                f"fstcn: scl_init {run} was trained with another width; train fstcn_scl with "
                "--param width=<this model's width>"
            ) from None

    def _lower(self, frames: torch.Tensor) -> torch.Tensor:
        """Lower SCL features ``(B, T, F, h, w)`` of frames ``(B, 3, T, H, W)``."""
        batch, _, count, height, width = frames.shape
        flat = frames.transpose(1, 2).reshape(batch * count, 3, height, width)  # (B*T, 3, H, W)
        features = self.lower(flat)  # (B*T, F, h, w)
        return features.view(batch, count, *features.shape[1:])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Lower SCL features ``(B, F, 2 l_t, h, w)``: difference frames, then the appearance
        frame (repeated to keep the clip layout).

        Raises:
            ConfigError: if the input does not hold ``2 * clip_len`` frames.
        """
        if x.shape[2] != 2 * self.clip_len:
            raise ConfigError(
                f"fstcn takes clip pairs of 2 x {self.clip_len} frames (sampler clip_pairs), "
                f"got {x.shape[2]} frames"
            )
        appearance, later = x[:, :, : self.clip_len], x[:, :, self.clip_len :]
        difference = (appearance - later).abs()  # eq. (4): (B, 3, l_t, H, W)
        # A random frame of the appearance clip in training, the middle one at test time.
        chosen = int(torch.randint(self.clip_len, ())) if self.training else self.clip_len // 2
        frames = torch.cat([difference, appearance[:, :, chosen : chosen + 1]], dim=2)
        features = self._lower(frames)  # (B, l_t + 1, F, h, w)
        return features.transpose(1, 2)  # (B, F, l_t + 1, h, w)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Score map ``(B, K, 1)`` of the lower features of a clip pair."""
        per_frame = features.transpose(1, 2)  # (B, l_t + 1, F, h, w)
        parts = []
        if self.paths != "scl":
            difference = per_frame[:, : self.clip_len]  # (B, l_t, F, h, w)
            batch, count = difference.shape[:2]
            reduced = self.tcl_scl(difference.flatten(0, 1))  # (B*l_t, 128, s, s)
            reduced = reduced.view(batch, count, *reduced.shape[1:])  # (B, l_t, 128, s, s)
            planes = self.tp(reduced)  # (B, s*s, l_t, 128): positions as maps over (t, f')
            tcl = torch.cat([self.tcl3(planes), self.tcl5(planes)], dim=1)  # (B, 64, l_t, 128)
            parts.append(self.tcl_fc(tcl.flatten(1)))
        if self.paths != "tcl":
            appearance = self.scl(per_frame[:, -1])  # (B, 128, s, s)
            parts.append(self.scl_fc(appearance.flatten(1)))
        joint = self.joint(torch.cat(parts, dim=1))  # (B, 2048)
        return self.classifier(joint).unsqueeze(2)  # (B, K) -> (B, K, 1)

    def head_parameters(self) -> list[nn.Parameter]:
        """The classifier (the last FC layer)."""
        return list(self.classifier.parameters())


class FstCNFrames(FrameCNN):
    """The lower SCLs with §2.3's auxiliary classifier: a frame CNN for their pre-training.

    ``vidfer train-frames RUN.yaml --model fstcn_scl --param width=W`` trains it on the frames of
    the training videos; ``FstCN(scl_init=RUN)`` takes its lower SCLs. Input normalisation is
    that of vidfer's clip transforms (their default mean and std), so the pre-trained layers see
    the same values inside FstCN.

    Args:
        num_classes: Output classes.
        width: FstCN's width multiplier.
        input_size: Input side S (the paper: 204).
    """

    def __init__(self, num_classes: int, *, width: float = 1.0, input_size: int = 204) -> None:
        super().__init__()
        self.lower = lower_scls(width)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(scaled_channels(512, width, minimum=1), num_classes)
        self.input_size, self.in_channels, self.num_classes = input_size, 3, num_classes
        self.mean, self.std = TransformConfig().mean, TransformConfig().std
        self.feature_layers = {"lower": "lower", "features": "pool", "logits": "classifier"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of frames ``(B, 3, S, S)``."""
        return self.classifier(self.pool(self.lower(x)))  # (B, F, h, w) -> (B, F) -> (B, K)

    def replace_classifier(self, num_classes: int) -> None:
        """A new auxiliary classifier with ``num_classes`` outputs."""
        self.classifier = nn.Linear(self.classifier.in_features, num_classes)
        self.num_classes = num_classes


register_frame_cnn("fstcn_scl", FstCNFrames)
