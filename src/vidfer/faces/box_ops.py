"""The box operations of the MTCNN cascade, without torchvision.

Squaring and regressing boxes, suppression by IoU (:func:`batched_nms`) and by overlap over the
smaller box (:func:`batched_nms_min`), and crops of boxes (:func:`crop_boxes`, through
:func:`roi_align`; :func:`crop_boxes_near` from uint8 frames, reading only round each box).
:func:`batched_nms` and :func:`roi_align` compute what ``torchvision.ops.batched_nms`` and
``torchvision.ops.roi_align`` (``aligned=True``, adaptive sampling ratio) compute, with numpy and
plain torch, so that face detection does not import torchvision: importing it costs more than a
second (it imports ``torch._dynamo``), a tenth of a whole ``vidfer predict`` of a short video.
``tests/faces/test_box_ops.py`` checks both against torchvision's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_NMS_ROWS = 64  # boxes _nms compares with all others at once (bounds its memory)
_SAMPLES = 1 << 22  # bilinear samples computed at once by roi_align (bounds its memory)


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy IoU suppression of ``(K, 4)`` boxes; kept indices ``(k,)``, best score first.

    As torchvision's kernel: scores sorted stably, areas without the +1 of pixel counts, a box
    suppressed when its IoU with a kept one is above ``threshold``. The best boxes left are
    compared with all those left at once, suppressing in score order among them, and the boxes
    they suppress are dropped before the next ones; 8 boxes at first (a cluster of overlapping
    candidates is then suppressed by its best few), twice as many each time, up to
    ``_NMS_ROWS``.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T  # (K,) each
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    count = 8
    while len(order):
        rows = order[:count, None]  # (B, 1): the best boxes left, against all left
        count = min(2 * count, _NMS_ROWS)
        width = np.maximum(np.minimum(x2[rows], x2[order]) - np.maximum(x1[rows], x1[order]), 0)
        height = np.maximum(np.minimum(y2[rows], y2[order]) - np.maximum(y1[rows], y1[order]), 0)
        inter = width * height  # (B, R)
        with np.errstate(invalid="ignore", divide="ignore"):
            over = inter / (areas[rows] + areas[order] - inter) > threshold  # (B, R); NaN: False
        suppressed = np.zeros(len(order), dtype=bool)
        for i in range(len(rows)):
            if not suppressed[i]:  # kept: it suppresses what it overlaps (itself too)
                keep.append(order[i])
                suppressed |= over[i]
        order = order[len(rows) :][~suppressed[len(rows) :]]
    return np.array(keep, dtype=np.int64)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Greedy IoU suppression within each group (each frame of a batch).

    Args:
        boxes: ``(K, 4)`` boxes ``x1, y1, x2, y2``.
        scores: ``(K,)`` scores.
        groups: ``(K,)`` group of each box; boxes of different groups never suppress each other.
        threshold: IoU above which the lower-scoring box is suppressed.

    Returns:
        ``(k,)`` int64 indices of the kept boxes, best score first.
    """
    if not len(boxes):
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    box = boxes.detach().cpu().numpy()
    score = scores.detach().cpu().numpy()
    group = groups.detach().cpu().numpy()
    kept = [
        members[_nms(box[members], score[members], threshold)]
        for members in (np.flatnonzero(group == g) for g in np.unique(group))
    ]
    keep = np.concatenate(kept)
    keep = keep[np.argsort(-score[keep], kind="stable")]
    return torch.from_numpy(keep).to(boxes.device)


def _samples(start: torch.Tensor, length: torch.Tensor, size: int, grid: int) -> torch.Tensor:
    """Sample coordinates ``(R, size * grid)`` along one axis: ``grid`` per output bin, at the
    centres of equal parts of each bin (torchvision's order of float operations)."""
    bins = torch.arange(size, dtype=start.dtype, device=start.device)  # (size,)
    within = torch.arange(grid, dtype=start.dtype, device=start.device) + 0.5  # (grid,)
    bin_size = (length / size)[:, None, None]  # (R, 1, 1)
    at = start[:, None, None] + bins[None, :, None] * bin_size  # (R, size, 1)
    return (at + within[None, None, :] * bin_size / grid).reshape(len(start), size * grid)


def _clamped(coords: torch.Tensor, extent: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates ``(R, n)`` along an axis of ``extent`` pixels as torchvision's
    ``bilinear_interpolate`` reads them: clamped to the edge pixels' centres, and whether each is
    inside (no further than one pixel outside; the others sample zero)."""
    inside = (coords >= -1.0) & (coords <= extent)
    return coords.clamp(0, extent - 1), inside


def _align_group(
    images: torch.Tensor, rois: torch.Tensor, size: int, grid: tuple[int, int]
) -> torch.Tensor:
    """:func:`roi_align` of rois ``(R, 5)`` that share their sampling grid ``(gh, gw)``."""
    channels, height, width = images.shape[1:]
    gh, gw = grid
    start_x, start_y = rois[:, 1] - 0.5, rois[:, 2] - 0.5  # (R,) aligned: pixel centres at +0.5
    ys, y_in = _clamped(_samples(start_y, rois[:, 4] - 0.5 - start_y, size, gh), height)
    xs, x_in = _clamped(_samples(start_x, rois[:, 3] - 0.5 - start_x, size, gw), width)
    # Pixel centres to grid_sample's [-1, 1] (align_corners=True); an axis of one pixel: 0.
    yn = ys * (2 / (height - 1)) - 1 if height > 1 else torch.zeros_like(ys)  # (R, n)
    xn = xs * (2 / (width - 1)) - 1 if width > 1 else torch.zeros_like(xs)  # (R, m)
    n, m = ys.shape[1], xs.shape[1]
    points = torch.stack(
        [xn[:, None, :].expand(-1, n, -1), yn[:, :, None].expand(-1, -1, m)], dim=3
    )  # (R, n, m, 2) as x, y
    frames = rois[:, 0].long()
    if torch.equal(frames, torch.arange(len(images), device=frames.device)):
        values = _bilinear(images, points)  # a box per image (crop_boxes_near's parts): one call
    else:
        values = images.new_empty((len(rois), channels, n, m))
        for frame in frames.unique().tolist():
            mine = (frames == frame).nonzero()[:, 0]  # (r,)
            sampled = _bilinear(images[frame : frame + 1], points[mine].reshape(1, -1, m, 2))
            # (1, C, r * n, m) -> (r, C, n, m)
            values[mine] = sampled.reshape(channels, len(mine), n, m).transpose(0, 1)
    if not (y_in.all() and x_in.all()):  # samples beyond a border read zero
        values *= y_in[:, None, :, None] & x_in[:, None, None, :]  # (R, C, n, m)
    # The mean of each bin's gh x gw samples, one axis at a time (the last axis is contiguous).
    values = values.reshape(len(rois), channels, n, size, gw).sum(dim=4)  # (R, C, n, size)
    values = values.reshape(len(rois), channels, size, gh, size).sum(dim=3)
    return values / (gh * gw)  # (R, C, size, size)


def _bilinear(images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples ``(N, C, h, w)`` of ``(N, C, H, W)`` images at ``(N, h, w, 2)`` points
    in ``[-1, 1]`` (x, y; the edge pixels' centres at -1 and 1)."""
    return F.grid_sample(images, points, mode="bilinear", padding_mode="border", align_corners=True)


def _grids(rois: torch.Tensor, size: int) -> torch.Tensor:
    """Samples per output bin and axis ``(R, 2)`` as ``gh, gw`` of rois ``(R, 5)`` cropped to
    ``size x size``: ``ceil(side / size)``, 0 for a box without area (its crop stays zero)."""
    sides = (rois[:, 3:5] - 0.5) - (rois[:, 1:3] - 0.5)  # (R, 2): width, height, in float32
    return torch.where(sides > 0, torch.ceil(sides / size), 0).long().flip(1)  # (R, 2) as h, w


def _rois(frames: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """:func:`roi_align`'s rois ``(K, 5)`` of cascade boxes ``(K, 4)`` in frames ``(K,)``: a
    box ``x1..x2`` covers the pixel edges ``[x1 - 1, x2]``."""
    return torch.cat([frames[:, None].to(boxes), boxes[:, 0:2] - 1, boxes[:, 2:4]], dim=1)


def roi_align(images: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """Average bilinear samples of boxes of images into ``size x size`` crops.

    torchvision's ``roi_align(images, rois, (size, size), spatial_scale=1, sampling_ratio=-1,
    aligned=True)``: pixel ``i``'s centre at ``i + 0.5``, each output bin the mean of
    ``ceil(box side / size)`` samples per axis, zero beyond one pixel outside the image.

    Args:
        images: ``(N, C, H, W)`` float images.
        rois: ``(R, 5)`` rows ``frame index, x1, y1, x2, y2``.
        size: The crops' side.

    Returns:
        ``(R, C, size, size)`` crops.
    """
    crops = images.new_zeros((len(rois), images.shape[1], size, size))
    if not len(rois):
        return crops
    grids = [(int(h), int(w)) for h, w in _grids(rois, size).tolist()]
    for grid in sorted(set(grids)):
        if not grid[0] or not grid[1]:
            continue
        members = [i for i, g in enumerate(grids) if g == grid]
        step = max(_SAMPLES // (size * size * grid[0] * grid[1]), 1)  # bounds the memory
        for start in range(0, len(members), step):
            chunk = torch.tensor(
                members[start : start + step], dtype=torch.long, device=images.device
            )
            crops[chunk] = _align_group(images, rois[chunk], size, grid)
    return crops


def square_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Grow ``(K, 4)`` boxes to squares about their centres (the cascade's ``rerec``)."""
    wh = boxes[:, 2:4] - boxes[:, 0:2]  # (K, 2)
    side = wh.max(dim=1, keepdim=True).values  # (K, 1)
    top_left = boxes[:, 0:2] + 0.5 * wh - 0.5 * side
    return torch.cat([top_left, top_left + side], dim=1)


def regress_boxes(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply ``(K, 4)`` offsets in units of the inclusive box size (the cascade's ``bbreg``)."""
    wh = boxes[:, 2:4] - boxes[:, 0:2] + 1  # (K, 2)
    return boxes + offsets * wh.repeat(1, 2)  # (K, 2) -> (K, 4) as w, h, w, h


def batched_nms_min(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Greedy NMS where overlap is intersection over the smaller box, within each group.

    O-Net's last pass uses this "Min" overlap so that a small box inside a larger face box is
    removed even though their IoU is low. :func:`batched_nms` is IoU only, and few boxes remain
    here.
    """
    order = scores.argsort(descending=True)
    # Shift each frame's boxes far apart so that one pass never mixes frames.
    offsets = groups[order].to(boxes) * (boxes.max() - boxes.min() + 2)
    b = boxes[order] + offsets[:, None]  # (K, 4)
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)  # (K,)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])  # (K, K, 2)
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])  # (K, K, 2)
    inter = (rb - lt + 1).clamp(min=0).prod(dim=2)  # (K, K)
    overlap = inter / torch.minimum(area[:, None], area[None, :])
    # The greedy pass is sequential: on the CPU, from one copy of the (K, K) overlaps (on a GPU,
    # one transfer instead of one synchronisation per box).
    above = (overlap > threshold).cpu().numpy()
    suppressed = np.zeros(len(b), dtype=bool)
    keep = []
    for i in range(len(b)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= above[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def crop_boxes(
    images: torch.Tensor, frames: torch.Tensor, boxes: torch.Tensor, size: int
) -> torch.Tensor:
    """Resample each box of its frame to ``size x size``, zero outside the frame.

    A box ``x1..x2`` covers the pixel edges ``[x1 - 1, x2]``; ``aligned=True`` puts pixel ``i``'s
    centre at ``i + 0.5`` in that frame. The adaptive sampling ratio averages about one sample per
    source pixel in each output bin, close to the area resampling the networks were run with.
    """
    return roi_align(images, _rois(frames, boxes), size)


def crop_boxes_near(
    frames: np.ndarray, boxes: torch.Tensor, owner: torch.Tensor, size: int
) -> torch.Tensor:
    """:func:`crop_boxes` of boxes ``(K, 4)`` of uint8 frames ``(T, H, W, 3)`` (``owner``
    ``(K,)``: each box's frame), each resampled from its frame's pixels round the box only.

    The same crops ``(K, 3, size, size)`` (to float rounding), on the boxes' device, without
    making whole frames float for a face or two each (12 bytes a pixel: 11 MB a 720p frame).
    Boxes with as many samples per crop pixel are cropped together, from parts of their frames
    of one shape, in one sampling call.
    """
    height, width = frames.shape[1:3]
    crops = torch.zeros((len(boxes), 3, size, size), device=boxes.device)
    corners = boxes.detach().cpu().numpy().astype(np.float64)  # (K, 4)
    # A box samples pixel edges [x1 - 1, x2] (centres 0.5 in) and their bilinear neighbours:
    # 3 pixels either side hold them all; beyond the frame stays zero.
    low = np.maximum(np.floor(corners[:, 0:2]) - 3, 0).astype(np.int64)  # (K, 2) as x, y
    high = np.minimum(np.ceil(corners[:, 2:4]) + 3, [width, height]).astype(np.int64)  # (K, 2)
    span = high - low  # (K, 2) pixels each box reads
    samples = _grids(_rois(owner, boxes), size).cpu().numpy()  # (K, 2)
    kept = (span > 0).all(axis=1) & (samples > 0).all(axis=1)  # the others' crops stay zero
    for group in np.unique(samples[kept], axis=0):
        members = np.flatnonzero(kept & (samples == group).all(axis=1))  # (k,)
        part_w, part_h = span[members].max(axis=0)
        # Each part holds its box's pixels, of one shape, inside the frame.
        start = np.minimum(low[members], [width - part_w, height - part_h])  # (k, 2)
        parts = np.stack(
            [
                frames[frame, y : y + part_h, x : x + part_w]
                for frame, (x, y) in zip(owner[members].tolist(), start.tolist(), strict=True)
            ]
        )  # (k, h, w, 3)
        images = torch.from_numpy(parts).to(boxes.device).permute(0, 3, 1, 2).float()
        index = torch.from_numpy(members).to(boxes.device)
        moved = boxes[index] - torch.from_numpy(start).to(boxes).repeat(1, 2)  # (k, 4)
        crops[index] = crop_boxes(images, torch.arange(len(members)), moved, size)
    return crops
