"""The box operations of the MTCNN cascade, without torchvision.

Squaring and regressing boxes, suppression by IoU (:func:`batched_nms`) and by overlap over the
smaller box (:func:`batched_nms_min`), and crops of boxes (:func:`crop_boxes` of uint8 frames,
reading only the pixels round each box; :func:`roi_align` of float images).
:func:`batched_nms` and :func:`roi_align` compute what ``torchvision.ops.batched_nms`` and
``torchvision.ops.roi_align`` (``aligned=True``, adaptive sampling ratio) compute, with numpy and
plain torch, so that face detection does not import torchvision: importing it costs more than a
second (it imports ``torch._dynamo``), a tenth of a whole ``vidfer predict`` of a short video.
``tests/faces/test_box_ops.py`` checks both against torchvision's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

_NMS_ROWS = 64  # boxes _nms compares with all others at once (bounds its memory)
_CROP_VALUES = 1 << 22  # patch values gathered at once by _crop (bounds its memory)


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


class _AxisWeights(NamedTuple):
    """One axis of :func:`_crop`'s sampling, as a matrix per roi: output bin ``b`` of roi ``r`` is
    ``sum_j weight[r, b, j] * pixel[read[r] + taps[r, b, j]]`` along the axis.

    Attributes:
        read: ``(R,)`` first pixel read.
        span: ``(R,)`` pixels read from ``read`` on.
        taps: ``(R, size, 2 * G)`` pixels each bin's bilinear samples read, from ``read``.
        weight: ``(R, size, 2 * G)`` their weights (bilinear weight over samples per bin; zero
            for a sample more than a pixel outside the image).
    """

    read: torch.Tensor
    span: torch.Tensor
    taps: torch.Tensor
    weight: torch.Tensor


def _axis_weights(
    start: torch.Tensor, end: torch.Tensor, extent: int, size: int, grid: torch.Tensor
) -> _AxisWeights:
    """The sampling of rois from ``start`` to ``end`` ``(R,)`` (pixel centres at ``i + 0.5``)
    along an axis of ``extent`` pixels, ``grid`` ``(R,)`` samples per output bin.

    As torchvision's ``roi_align`` computes it: the samples at the centres of ``grid`` equal
    parts of each of ``size`` bins (its order of float operations), each read by
    ``bilinear_interpolate`` (clamped to the edge pixels' centres, zero beyond one pixel outside).
    """
    most = int(grid.max())
    parts = grid.to(start.dtype)[:, None, None]  # (R, 1, 1)
    bins = torch.arange(size, dtype=start.dtype, device=start.device)  # (size,)
    within = torch.arange(most, dtype=start.dtype, device=start.device) + 0.5  # (G,)
    bin_size = ((end - start) / size)[:, None, None]  # (R, 1, 1)
    at = start[:, None, None] + bins[None, :, None] * bin_size  # (R, size, 1)
    coords = at + within[None, None, :] * bin_size / parts  # (R, size, G)
    used = torch.arange(most, device=start.device) < grid[:, None, None]  # (R, size, G)
    inside = used & (coords >= -1.0) & (coords <= extent)
    clamped = coords.clamp(0, extent - 1)
    low = clamped.floor()
    high_weight = clamped - low  # (R, size, G)
    low = low.long()
    high = (low + 1).clamp(max=extent - 1)
    share = inside.to(start.dtype) / parts  # (R, size, G): each sample's part of its bin
    read = torch.where(inside, low, extent - 1).amin(dim=(1, 2))  # (R,)
    span = (torch.where(inside, high, 0).amax(dim=(1, 2)) - read + 1).clamp(min=1)  # (R,)
    weight = torch.cat([(1 - high_weight) * share, high_weight * share], dim=2)  # (R, size, 2G)
    index = torch.cat([low, high], dim=2) - read[:, None, None]  # (R, size, 2G)
    return _AxisWeights(read, span, torch.where(weight > 0, index, 0), weight)


def _grids(rois: torch.Tensor, size: int) -> torch.Tensor:
    """Samples per output bin and axis ``(R, 2)`` as ``gh, gw`` of rois ``(R, 5)`` cropped to
    ``size x size``: ``ceil(side / size)``, 0 for a box without area (its crop stays zero)."""
    sides = (rois[:, 3:5] - 0.5) - (rois[:, 1:3] - 0.5)  # (R, 2): width, height, in float32
    return torch.where(sides > 0, torch.ceil(sides / size), 0).long().flip(1)  # (R, 2) as h, w


def _rois(frames: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """:func:`roi_align`'s rois ``(K, 5)`` of cascade boxes ``(K, 4)`` in frames ``(K,)``: a
    box ``x1..x2`` covers the pixel edges ``[x1 - 1, x2]``."""
    return torch.cat([frames[:, None].to(boxes), boxes[:, 0:2] - 1, boxes[:, 2:4]], dim=1)


def _patch_side(span: torch.Tensor) -> torch.Tensor:
    """The side ``(R,)`` of the square patch read for rois reading ``span`` ``(R,)`` pixels:
    ``span`` rounded up to a step of a quarter octave, so that rois of about one size are
    cropped together."""
    quarters = torch.ceil(torch.log2(span.double().clamp(min=1)) * 4)
    return torch.ceil(2 ** (quarters / 4)).long().clamp(min=span)


def _crop(pixels: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`roi_align` of ``(N, H, W, C)`` images of any dtype, ``(R, C, size, size)`` float.

    Bilinear sampling is separable: each roi's crop is ``Wy @ patch @ Wx^T`` per channel, with
    one ``(size, L)`` matrix per axis holding each output bin's mean of bilinear samples
    (:func:`_axis_weights`) and ``patch`` the ``L x L`` pixels the roi reads. Rois reading patches
    of about one size go together: their patches are gathered at once (rows of pixels, in the
    images' own dtype: a uint8 video frame is not made float whole) and cropped by two batched
    matrix products.
    """
    _, height, width, channels = pixels.shape
    crops = torch.zeros((len(rois), channels, size, size), device=pixels.device)
    grids = _grids(rois, size)  # (R, 2) as gh, gw
    todo = (grids > 0).all(dim=1).nonzero()[:, 0]  # (R',) the others' crops stay zero
    if not len(todo):
        return crops
    rois, grids = rois[todo].float(), grids[todo]
    ys = _axis_weights(rois[:, 2] - 0.5, rois[:, 4] - 0.5, height, size, grids[:, 0])
    xs = _axis_weights(rois[:, 1] - 0.5, rois[:, 3] - 0.5, width, size, grids[:, 1])
    sides = _patch_side(torch.maximum(ys.span, xs.span))  # (R',)
    frames = rois[:, 0].long()
    # Row r of a patch width's windows (flat.unfold below: (N * H * W - pw + 1, pw * C), a view)
    # is the run of pw pixels from pixel r on, channels last.
    flat = pixels.contiguous().reshape(-1)
    for side in sides.unique().tolist():
        ph, pw = min(side, height), min(side, width)
        group = (sides == side).nonzero()[:, 0]
        step = max(_CROP_VALUES // (ph * pw * channels), 1)  # bounds the memory
        for members in group.split(step):
            k = len(members)
            top = ys.read[members].clamp(max=height - ph)  # (k,) the patch inside the image
            left = xs.read[members].clamp(max=width - pw)
            wy = crops.new_zeros((k, size, ph)).scatter_add_(
                2, ys.taps[members] + (ys.read[members] - top)[:, None, None], ys.weight[members]
            )  # (k, size, ph)
            wx = crops.new_zeros((k, size, pw)).scatter_add_(
                2, xs.taps[members] + (xs.read[members] - left)[:, None, None], xs.weight[members]
            )  # (k, size, pw)
            rows = top[:, None] + torch.arange(ph, device=top.device)  # (k, ph)
            starts = ((frames[members, None] * height + rows) * width + left[:, None]).reshape(-1)
            patch = flat.unfold(0, pw * channels, channels).index_select(0, starts)
            # (k * ph, pw * C) -> (k, ph, pw * C)
            patch = patch.float().reshape(k, ph, pw * channels)
            rowwise = torch.bmm(wy, patch)  # (k, size, pw * C)
            # (k, size, pw, C) -> (k, size, C, pw) -> (k, size * C, pw)
            rowwise = rowwise.reshape(k, size, pw, channels).transpose(2, 3)
            crop = torch.bmm(rowwise.reshape(k, size * channels, pw), wx.transpose(1, 2))
            # (k, size * C, size) -> (k, size, C, size) -> (k, C, size, size)
            crops[todo[members]] = crop.reshape(k, size, channels, size).transpose(1, 2)
    return crops


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
    return _crop(images.permute(0, 2, 3, 1), rois, size)  # (N, C, H, W) -> (N, H, W, C)


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
    frames: torch.Tensor, owner: torch.Tensor, boxes: torch.Tensor, size: int
) -> torch.Tensor:
    """Resample each box of its frame to ``size x size`` float, zero outside the frame.

    A box ``x1..x2`` covers the pixel edges ``[x1 - 1, x2]``; ``aligned=True`` puts pixel ``i``'s
    centre at ``i + 0.5`` in that frame. The adaptive sampling ratio averages about one sample per
    source pixel in each output bin, close to the area resampling the networks were run with.
    Only the pixels round each box are read (and made float): a face or two of an HD frame cost
    their own pixels, not the frame's.

    Args:
        frames: ``(N, H, W, C)`` frames, e.g. uint8 video frames.
        owner: ``(K,)`` each box's frame.
        boxes: ``(K, 4)`` cascade boxes ``x1, y1, x2, y2``.
        size: The crops' side.

    Returns:
        ``(K, C, size, size)`` float32 crops.
    """
    return _crop(frames, _rois(owner, boxes), size)
