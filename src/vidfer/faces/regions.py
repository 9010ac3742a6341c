"""MTCNN's image pyramid: its scales, and its levels computed only around regions of the frames,
cell for cell as the whole.

Each pyramid level of :class:`vidfer.faces.mtcnn.MTCNN` is the whole frame resized by area
averaging (``F.interpolate(mode="area")``, i.e. ``adaptive_avg_pool2d``): level row ``i`` of a
level ``h`` rows high averages frame rows ``floor(i * H / h) .. ceil((i + 1) * H / h) - 1``, and
columns likewise. :func:`level_patches` computes only the level rows and columns around each
region, with those same bins (one averaging matrix per axis), so that a P-Net cell of a patch
scores the window the whole level's cell scores (to float rounding). Resizing a crop of the frame
instead would shift the bins, and with them every box and landmark the cascade gives.

P-Net's output cell ``c`` reads level columns ``2 * c .. 2 * c + 11`` (a 2x2 max-pool, stride 2,
``ceil_mode``): a patch starting at an even level column has its cells on the whole level's grid.
A cell whose window runs past the patch's end differs from the whole level's and is not valid,
unless the patch ends where the level ends (there both see the same partial pool).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PNET_CELL = 12  # P-Net's receptive field: one output cell scores a 12x12 window
PNET_STRIDE = 2  # P-Net's output stride (its single 2x2 max-pool)


def pyramid_scales(height: int, width: int, min_face_size: int, factor: float) -> list[float]:
    """Scales at which P-Net's 12-pixel window matches faces from ``min_face_size`` upwards."""
    scale = PNET_CELL / min_face_size
    short_side = min(height, width) * scale
    scales = []
    while short_side >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        short_side *= factor
    return scales


@dataclass(frozen=True)
class LevelPatches:
    """The parts of one pyramid level around each region.

    Attributes:
        patches: ``(R, 3, ph, pw)`` level pixels, the same shape for every region.
        origin: ``(R, 2)`` the whole level's P-Net cell at each patch's first cell, as x, y.
        valid: ``(R, ph', pw')`` P-Net cells of each patch that score what the whole level's do.
    """

    patches: torch.Tensor
    origin: torch.Tensor
    valid: torch.Tensor


@dataclass(frozen=True)
class _Axis:
    """One axis of the patches: ``start`` ``(R,)`` first level index (even), ``weights``
    ``(R, p, L)`` averaging matrices over the ``L`` frame pixels from ``read`` ``(R,)`` on,
    ``valid`` ``(R, p')`` P-Net cells."""

    start: np.ndarray
    weights: np.ndarray
    read: np.ndarray
    valid: np.ndarray


def pnet_cells(length: int) -> int:
    """P-Net's output cells along an axis of ``length`` level pixels (conv 3, pool 2 with
    ``ceil_mode``, conv 3, conv 3)."""
    return -(-(length - 2) // PNET_STRIDE) - 4


def _axis(lo: np.ndarray, hi: np.ndarray, full: int, size: int) -> _Axis:
    """The patches along one axis of ``full`` frame pixels resized to ``size`` level pixels,
    covering frame coordinates ``lo .. hi`` ``(R,)`` of each region."""
    first = np.floor(lo * size / full).astype(np.int64).clip(0, size - 1)
    first -= first % PNET_STRIDE  # (R,) even: cells on the whole level's grid
    last = np.ceil(hi * size / full).astype(np.int64).clip(first + 1, size)  # (R,) exclusive
    length = max(int((last - first).max()), PNET_CELL)
    length += (size - length) % PNET_STRIDE  # the level's parity, so a patch can end at its end
    length = min(length, size)
    start = np.minimum(first, size - length)  # (R,) still even: size - length is
    index = start[:, None] + np.arange(length)  # (R, p) level pixels
    bin_lo = index * full // size  # (R, p) first frame pixel of each level pixel's bin
    bin_hi = -(-(index + 1) * full // size)  # (R, p) exclusive end
    span = int((bin_hi[:, -1] - bin_lo[:, 0]).max())  # frame pixels read, the same for all
    read = np.minimum(bin_lo[:, 0], full - span)  # (R,) first frame pixel read
    at = read[:, None] + np.arange(span)  # (R, L) frame pixels read
    inside = (at[:, None, :] >= bin_lo[:, :, None]) & (at[:, None, :] < bin_hi[:, :, None])
    weights = (inside / (bin_hi - bin_lo)[:, :, None]).astype(np.float32)  # (R, p, L)
    cells = np.arange(pnet_cells(length))
    at_end = (start + length == size)[:, None]  # (R, 1)
    valid = (PNET_STRIDE * cells + PNET_CELL <= length)[None, :] | at_end  # (R, p')
    return _Axis(start, weights, read, valid)


def level_patches(
    images: torch.Tensor, sources: torch.Tensor, regions: np.ndarray, size: tuple[int, int]
) -> LevelPatches:
    """The pixels of one pyramid level around each region, as the whole level has them (to float
    rounding).

    Args:
        images: ``(N, 3, H, W)`` float frames.
        sources: ``(R,)`` frame index of each region.
        regions: ``(R, 4)`` float ``x1, y1, x2, y2`` frame coordinates (pixel edges) to cover.
        size: The level's ``(h, w)``, as the whole-frame pyramid resizes to.

    Returns:
        The :class:`LevelPatches`; every patch is at least 12x12 (one P-Net window) and at most
        the whole level.
    """
    import torch  # here: the keyframe detector, which a decoding worker imports, needs none

    _, _, height, width = images.shape
    ys = _axis(regions[:, 1], regions[:, 3], height, size[0])
    xs = _axis(regions[:, 0], regions[:, 2], width, size[1])
    device = images.device
    span_y, span_x = ys.weights.shape[2], xs.weights.shape[2]
    crops = torch.stack(
        [
            images[f, :, y : y + span_y, x : x + span_x]
            for f, y, x in zip(sources.tolist(), ys.read.tolist(), xs.read.tolist(), strict=True)
        ]
    )  # (R, 3, Ly, Lx)
    wy = torch.from_numpy(ys.weights).to(device)[:, None]  # (R, 1, ph, Ly)
    wx = torch.from_numpy(xs.weights).to(device)[:, None]  # (R, 1, pw, Lx)
    patches = wy @ crops @ wx.transpose(2, 3)  # (R, 3, ph, pw)
    origin = np.stack([xs.start, ys.start], axis=1) // PNET_STRIDE  # (R, 2) as x, y
    valid = ys.valid[:, :, None] & xs.valid[:, None, :]  # (R, ph', pw')
    return LevelPatches(
        patches,
        torch.from_numpy(origin).to(device),
        torch.from_numpy(valid).to(device),
    )


def search_regions(boxes: np.ndarray, margin: float, height: int, width: int) -> np.ndarray:
    """Regions ``(R, 4)`` to re-detect faces ``(R, 4)`` in: each box grown by ``margin`` times its
    longer side on every side, clipped to the ``height x width`` frame."""
    side = (boxes[:, 2:4] - boxes[:, 0:2]).max(axis=1, initial=0)[:, None]  # (R, 1)
    grown = boxes.astype(np.float64) + margin * side * np.array([-1, -1, 1, 1])  # (R, 4)
    return grown.clip(0, [width, height, width, height])
