"""MTCNN's first stage: P-Net's candidate windows over the image pyramid, of whole frames
(:func:`propose`) or of the pyramid levels' pixels around regions only (:func:`propose_near`,
through :func:`vidfer.faces.regions.level_patches`: the same cells as the whole levels').

Each level's windows above P-Net's threshold go through the level's NMS (IoU 0.5), then all
levels' through one NMS (IoU 0.7) per frame or region, and are regressed by P-Net's offsets and
squared, as in the original cascade. :class:`vidfer.faces.mtcnn.MTCNN` runs the later stages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vidfer.faces.box_ops import batched_nms, square_boxes
from vidfer.faces.mtcnn_nets import PNet, normalise
from vidfer.faces.regions import PNET_CELL, PNET_STRIDE, level_patches, pyramid_scales

Candidates = tuple[torch.Tensor, torch.Tensor]  # boxes or candidate rows (K, ...), groups (K,)


@dataclass(frozen=True)
class Pyramid:
    """The image pyramid and P-Net's threshold.

    Attributes:
        min_face_size: Smallest face side, in frame pixels (the first level's scale: 12 / it).
        factor: Scale ratio between levels.
        threshold: P-Net's face-probability threshold.
    """

    min_face_size: int
    factor: float
    threshold: float

    def levels(self, height: int, width: int) -> Iterator[tuple[float, tuple[int, int]]]:
        """Each level's scale and ``(h, w)`` for ``height x width`` frames."""
        for scale in pyramid_scales(height, width, self.min_face_size, self.factor):
            yield scale, (int(height * scale + 1), int(width * scale + 1))


def propose(pnet: PNet, images: torch.Tensor, pyramid: Pyramid) -> Candidates:
    """P-Net over the whole pyramid of ``(N, 3, H, W)`` frames (every level on all frames at
    once): square candidate boxes ``(K, 4)`` and their frame indices ``(K,)``."""
    levels = []
    for scale, size in pyramid.levels(*images.shape[2:]):
        level = F.interpolate(images, size=size, mode="area")  # (N, 3, h, w)
        levels.append(_level_candidates(pnet, level, scale, pyramid.threshold))
    return _merge_levels(levels, images)


def propose_near(
    pnet: PNet,
    images: torch.Tensor,
    pyramid: Pyramid,
    sources: torch.Tensor,
    regions: np.ndarray,
    smallest: np.ndarray,
    largest: np.ndarray,
) -> Candidates:
    """What :func:`propose` gives inside regions, from the pyramid levels' patches around each
    region (all regions of a level in one P-Net call).

    Args:
        pnet: The proposal network.
        images: ``(N, 3, H, W)`` frames.
        pyramid: The pyramid and P-Net's threshold.
        sources: ``(R,)`` frame index of each region.
        regions: ``(R, 4)`` frame coordinates ``x1, y1, x2, y2``.
        smallest: ``(R,)`` the smallest face looked for in each region, in frame pixels
            (levels whose 12-pixel window is smaller are skipped for that region).
        largest: ``(R,)`` the largest window looked at in each region, in frame pixels
            (levels whose 12-pixel window is larger are skipped for that region).

    Returns:
        Square candidate boxes ``(K, 4)`` and their region indices ``(K,)``.
    """
    levels = []
    for scale, size in pyramid.levels(*images.shape[2:]):
        window = PNET_CELL / scale  # frame pixels
        members = np.flatnonzero((window >= smallest) & (window <= largest))  # (r,) regions
        if not len(members):
            continue
        near = level_patches(images, sources[members], regions[members], size)
        cand, groups = _level_candidates(
            pnet, near.patches, scale, pyramid.threshold, near.origin, near.valid
        )
        levels.append((cand, torch.from_numpy(members).to(groups)[groups]))
    return _merge_levels(levels, images)


def _level_candidates(
    pnet: PNet,
    level: torch.Tensor,
    scale: float,
    threshold: float,
    origin: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> Candidates:
    """P-Net's windows of one pyramid level above ``threshold``, after the level's NMS.

    Args:
        pnet: The proposal network.
        level: ``(G, 3, h, w)`` the level of each frame, or patches of it.
        scale: The level's scale.
        threshold: P-Net's face-probability threshold.
        origin: ``(G, 2)`` the level's cell at each patch's first cell (x, y); None: 0.
        valid: ``(G, h', w')`` the cells to keep; None: all.

    Returns:
        Candidates ``(K, 9)`` (frame box, score, P-Net offsets) and their groups ``(K,)``.
    """
    offsets, prob = pnet(normalise(level))  # (G, 4, h', w'), (G, h', w')
    hit = prob >= threshold
    if valid is not None:
        hit &= valid
    hits = hit.nonzero()  # (K, 3): group, row, col
    groups = hits[:, 0]
    scores = prob[hits[:, 0], hits[:, 1], hits[:, 2]]  # (K,)
    deltas = offsets.permute(0, 2, 3, 1)[hits[:, 0], hits[:, 1], hits[:, 2]]  # (K, 4)
    cell = hits[:, [2, 1]]  # (K, 2) as x, y
    if origin is not None:
        cell = cell + origin[groups]
    # Window (col, row) of the level maps back to the frame with the cascade's 1-based
    # corners: floor((2 * c + 1) / scale) .. floor((2 * c + 12) / scale).
    cell = cell.to(level.dtype)
    top_left = torch.floor((PNET_STRIDE * cell + 1) / scale)
    bottom_right = torch.floor((PNET_STRIDE * cell + PNET_CELL) / scale)
    windows = torch.cat([top_left, bottom_right], dim=1)  # (K, 4)
    keep = batched_nms(windows, scores, groups, 0.5)
    return torch.cat([windows, scores[:, None], deltas], dim=1)[keep], groups[keep]


def _merge_levels(levels: Sequence[Candidates], images: torch.Tensor) -> Candidates:
    """Stage 1's end: the levels' candidates (``(K_l, 9)`` and groups ``(K_l,)`` each) across
    levels after NMS, regressed by P-Net's offsets and squared: boxes ``(K, 4)``, groups ``(K,)``.
    """
    if not levels:
        return images.new_zeros((0, 4)), torch.zeros(0, dtype=torch.long, device=images.device)
    cand = torch.cat([c for c, _ in levels])  # (K, 9): box, score, offsets
    groups = torch.cat([g for _, g in levels])
    keep = batched_nms(cand[:, :4], cand[:, 4], groups, 0.7)
    cand, groups = cand[keep], groups[keep]
    # P-Net's offsets are in units of the exclusive window size (no +1), unlike later stages.
    wh = cand[:, 2:4] - cand[:, 0:2]  # (K, 2)
    boxes = cand[:, 0:4] + cand[:, 5:9] * wh.repeat(1, 2)
    return square_boxes(boxes), groups
