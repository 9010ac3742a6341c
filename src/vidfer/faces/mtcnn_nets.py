"""The three networks of MTCNN (Zhang et al., 2016), with facenet-pytorch 2.6.0's parameter names.

The cascade that runs them is :mod:`vidfer.faces.mtcnn`. The original weights were trained on
transposed images: facenet-pytorch transposed the convolution kernels instead, which leaves the
flatten before R-Net's and O-Net's dense layers in (W, H, C) order -- reproduced here. Pixels go
in through :func:`normalise`; candidate crops through :func:`candidate_calls`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

_CANDIDATES = 128  # candidate crops per R-Net/O-Net call (see candidate_calls)
_PADDED = 8  # a call of fewer crops than this is padded to a power of two (see candidate_calls)


def candidate_calls(net: nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``net`` over candidate crops ``(K, 3, s, s)`` in calls of a power of two crops, at most
    ``_CANDIDATES``; the outputs of the ``K`` crops.

    The candidate count changes from batch to batch. Run as one call, every new count is a new
    input shape, for which oneDNN builds and caches another convolution primitive, and the largest
    count of a video sets the peak of its activations: a preparation worker's memory then grows
    with the video's length. In calls of at most 8 sizes per network, memory is set by
    ``_CANDIDATES``. The crops go in the largest such calls they fill (85: 64, then 16), the last
    few (at most ``_PADDED``) padded with zero crops up to a power of two: padding all 85 to 128
    would run O-Net, the costliest per crop, on half as many crops again. Each crop's outputs do
    not depend on the others in its call.
    """
    outputs = []
    start = 0
    while start < len(crops):
        left = len(crops) - start
        size = min(_CANDIDATES, 1 << (left - 1).bit_length())  # the power of two >= left
        if size > max(left, _PADDED):
            size //= 2  # the largest power of two <= left: a full call
        part = crops[start : start + size]  # (k, 3, s, s), k <= size
        start += len(part)
        padded = torch.zeros((size, *part.shape[1:]), dtype=part.dtype).to(
            part.device, memory_format=torch.channels_last
        )  # (size, 3, s, s): zero crops after the k
        padded[: len(part)] = part
        outputs.append([out[: len(part)] for out in net(padded)])
    return tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))


def prelu_max_pool(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``max_pool2d(prelu(x, weight), 2, 2, ceil_mode=True)`` of ``(N, C, H, W)`` ``x``, exactly,
    at a fraction of its cost.

    A PReLU is monotonic on each side of 0, so the largest PReLU output of a window is that of
    its largest or of its smallest input: pooling both first, the PReLU runs on a quarter of the
    values. The windows' maxima and minima are elementwise maxima and minima of strided views.
    On P-Net's larger pyramid levels (10 channels, ``channels_last``) this ran 1.5 to 3 times
    as fast as the PReLU then PyTorch's max-pool; on levels under about 50,000 values, a few
    hundredths of a millisecond slower. Result in ``channels_last``.
    """
    return torch.maximum(
        F.prelu(_pool2(x, torch.maximum), weight), F.prelu(_pool2(x, torch.minimum), weight)
    )


def _pool2(
    x: torch.Tensor, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``op`` reduced over the 2x2 windows, stride 2, of ``(N, C, H, W)`` ``x``; an odd last row or
    column is a window of its own (``ceil_mode``)."""
    for dim in (2, 3):
        size = x.shape[dim]
        pairs = x.narrow(dim, 0, size - size % 2).unflatten(dim, (size // 2, 2))  # 2 at dim + 1
        pooled = op(pairs.select(dim + 1, 0), pairs.select(dim + 1, 1))  # size // 2 at dim
        if size % 2:
            pooled = torch.cat([pooled, x.narrow(dim, size - 1, 1)], dim)
        x = pooled.contiguous(memory_format=torch.channels_last)
    return x


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Map 0..255 pixels to about [-1, 1], the scale every MTCNN network was trained on.

    The result is in ``channels_last`` memory format, as the networks' weights are: PyTorch's CPU
    convolutions and max-pools run several times faster in that layout than in NCHW for these
    small networks, with the same values (to float rounding).
    """
    return ((x - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)


class PNet(nn.Module):
    """Proposal network: a fully convolutional 12x12 face/non-face scorer with box regression."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)  # then a 2x2 max-pool, stride 2 (see prelu_max_pool)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score every 12x12 window of a normalised image batch.

        Args:
            x: ``(N, 3, H, W)`` normalised RGB.

        Returns:
            Box offsets ``(N, 4, H', W')`` and face probabilities ``(N, H', W')``.
        """
        x = prelu_max_pool(self.conv1(x), self.prelu1.weight)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        prob = F.softmax(self.conv4_1(x), dim=1)[:, 1]  # (N, 2, H', W') -> face channel (N, H', W')
        return self.conv4_2(x), prob


class _CropNet(nn.Module):
    """The trunk R-Net and O-Net share: conv + PReLU (+ max-pool) stages over square crops, the
    transposed flatten, then a dense layer + PReLU. Subclasses add their output layers.

    Layers are registered under facenet-pytorch's names -- ``conv{i}``, ``prelu{i}``, ``pool{i}``
    for stage i, then ``dense{n}`` and ``prelu{n}`` with n the number of stages plus one -- so its
    state dicts load unchanged.

    Args:
        stages: Per stage: output channels, kernel size, and the window of its stride-2 max-pool
            (0: no pool).
        flat: Features of the last stage's output once flattened.
        dense: Units of the dense layer.
    """

    def __init__(self, stages: Sequence[tuple[int, int, int]], flat: int, dense: int) -> None:
        super().__init__()
        channels = 3
        for i, (out, kernel, pool) in enumerate(stages, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(channels, out, kernel_size=kernel))
            self.add_module(f"prelu{i}", nn.PReLU(out))
            if pool:
                self.add_module(f"pool{i}", nn.MaxPool2d(pool, 2, ceil_mode=True))
            channels = out
        self.add_module(f"dense{len(stages) + 1}", nn.Linear(flat, dense))
        self.add_module(f"prelu{len(stages) + 1}", nn.PReLU(dense))
        self._pooled = [bool(pool) for _, _, pool in stages]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Dense features ``(N, dense)`` of normalised ``(N, 3, S, S)`` crops."""
        for i, pooled in enumerate(self._pooled, start=1):
            x = self.get_submodule(f"prelu{i}")(self.get_submodule(f"conv{i}")(x))
            if pooled:
                x = self.get_submodule(f"pool{i}")(x)
        # The dense weights expect the transposed image's (H, W, C) flatten order, i.e. our
        # (W, H, C): (N, C, H, W) -> (N, W, H, C) -> (N, flat).
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        last = len(self._pooled) + 1
        return self.get_submodule(f"prelu{last}")(self.get_submodule(f"dense{last}")(x))


class RNet(_CropNet):
    """Refinement network: re-scores 24x24 candidate crops and refines their boxes."""

    def __init__(self) -> None:
        # 24x24 -> conv 22 -> pool 11 -> conv 9 -> pool 4 -> conv 3: 64 x 3 x 3 = 576 features.
        super().__init__(stages=((28, 3, 3), (48, 3, 3), (64, 2, 0)), flat=576, dense=128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score normalised ``(N, 3, 24, 24)`` crops.

        Returns:
            Box offsets ``(N, 4)`` and face probabilities ``(N,)``.
        """
        x = self.trunk(x)  # (N, 128)
        prob = F.softmax(self.dense5_1(x), dim=1)[:, 1]  # (N, 2) -> face probability (N,)
        return self.dense5_2(x), prob


class ONet(_CropNet):
    """Output network: final 48x48 scores, refined boxes and 5 landmarks."""

    def __init__(self) -> None:
        # 48x48 -> conv 46 -> pool 23 -> conv 21 -> pool 10 -> conv 8 -> pool 4 -> conv 3:
        # 128 x 3 x 3 = 1152 features.
        stages = ((32, 3, 3), (64, 3, 3), (64, 3, 2), (128, 2, 0))
        super().__init__(stages=stages, flat=1152, dense=256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score normalised ``(N, 3, 48, 48)`` crops.

        Returns:
            Box offsets ``(N, 4)``, landmarks ``(N, 10)`` as 5 x-fractions then 5 y-fractions of the
            crop, and face probabilities ``(N,)``.
        """
        x = self.trunk(x)  # (N, 256)
        prob = F.softmax(self.dense6_1(x), dim=1)[:, 1]  # (N, 2) -> face probability (N,)
        return self.dense6_2(x), self.dense6_3(x), prob
