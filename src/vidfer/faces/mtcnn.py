"""MTCNN face detection with 5 landmarks (Zhang et al., 2016), batched over the frames of a video.

The three networks carry the parameter names of facenet-pytorch 2.6.0, so its ``pnet.pt``,
``rnet.pt`` and ``onet.pt`` state dicts (vidfer assets ``mtcnn_pnet``/``mtcnn_rnet``/``mtcnn_onet``)
load unchanged. The cascade follows the original algorithm with facenet-pytorch's conventions:

* pixels are normalised as ``(x - 127.5) * 0.0078125`` before every network;
* the image pyramid starts at scale ``12 / min_face_size`` and shrinks by ``factor`` while the
  short side stays at least 12 pixels; each level is resized from the full frame by area averaging;
* box corners follow the cascade's (MATLAB-born) convention where a box ``x1..x2`` covers pixel
  columns ``x1 - 1 .. x2 - 1``; landmarks are 0-based pixel coordinates, as facenet-pytorch returns
  them;
* the original weights were trained on transposed images: facenet-pytorch transposed the
  convolution kernels instead, which leaves the flatten before R-Net's and O-Net's dense layers in
  (W, H, C) order — reproduced below.

Where facenet-pytorch 2.6.0 clamps a box to the frame and stretches the clipped crop, this module
crops with zero padding as the original cascade does (:func:`vidfer.faces.box_ops.roi_align`,
torchvision's ``roi_align`` without importing torchvision), so a face at the border is not
distorted before R-Net/O-Net.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfer.assets import asset_path
from vidfer.faces.box_ops import (
    batched_nms,
    batched_nms_min,
    crop_boxes,
    regress_boxes,
    square_boxes,
)
from vidfer.faces.types import FrameFaces
from vidfer.io.checkpoint import read_state_dict

logger = logging.getLogger(__name__)

_PNET_CELL = 12  # P-Net's receptive field: one output cell scores a 12x12 window
_PNET_STRIDE = 2  # P-Net's output stride (its single 2x2 max-pool)
_CANDIDATES = 128  # candidate crops per R-Net/O-Net call (see _candidate_calls)
_PNET_PIXELS = 1 << 19  # pyramid-level pixels per P-Net call (see _pnet_calls)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Map 0..255 pixels to about [-1, 1], the scale every MTCNN network was trained on.

    The result is in ``channels_last`` memory format, as the networks' weights are: PyTorch's CPU
    convolutions and max-pools run several times faster in that layout than in NCHW for these
    small networks, with the same values (to float rounding).
    """
    return ((x - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)


def _candidate_calls(net: nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``net`` over candidate crops ``(K, 3, s, s)`` in calls of at most ``_CANDIDATES`` crops,
    each call padded with zero crops to a power of two; the outputs of the ``K`` crops.

    The candidate count changes from batch to batch. Run as one call, every new count is a new
    input shape, for which oneDNN builds and caches another convolution primitive, and the largest
    count of a video sets the peak of its activations: a preparation worker's memory then grows
    with the video's length. In bounded calls of at most 8 padded sizes per network, memory is set
    by ``_CANDIDATES``. Each crop's outputs do not depend on the others in its call.
    """
    outputs = []
    for start in range(0, len(crops), _CANDIDATES):
        part = crops[start : start + _CANDIDATES]  # (k, 3, s, s)
        padded = torch.zeros(
            (1 << (len(part) - 1).bit_length(), *part.shape[1:]), dtype=part.dtype
        ).to(part.device, memory_format=torch.channels_last)  # (2^ceil(log2 k), 3, s, s)
        padded[: len(part)] = part
        outputs.append([out[: len(part)] for out in net(padded)])
    return tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))


def _pnet_calls(pnet: nn.Module, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P-Net over a pyramid level ``(N, 3, h, w)`` of a batch of frames, in calls of at most
    ``_PNET_PIXELS`` level pixels (at least one frame): its offsets ``(N, 4, h', w')`` and face
    probabilities ``(N, h', w')``.

    On HD frames one call over the whole batch makes activations of hundreds of megabytes, whose
    sizes change with the number of frames detected at once; freed, they leave the heap too
    fragmented to reuse, and a preparation worker's peak memory creeps up with the video's length.
    Small videos still go through in one call.
    """
    frames_per_call = max(1, _PNET_PIXELS // (level.shape[2] * level.shape[3]))
    parts = [pnet(part) for part in level.split(frames_per_call)]
    offsets, prob = zip(*parts, strict=True)
    return torch.cat(offsets), torch.cat(prob)


class PNet(nn.Module):
    """Proposal network: a fully convolutional 12x12 face/non-face scorer with box regression."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
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
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
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


def pyramid_scales(height: int, width: int, min_face_size: int, factor: float) -> list[float]:
    """Scales at which P-Net's 12-pixel window matches faces from ``min_face_size`` upwards."""
    scale = _PNET_CELL / min_face_size
    short_side = min(height, width) * scale
    scales = []
    while short_side >= _PNET_CELL:
        scales.append(scale)
        scale *= factor
        short_side *= factor
    return scales


class MTCNN(nn.Module):
    """The three-stage cascade over batches of video frames.

    Args:
        min_face_size: Smallest face side, in pixels, that the pyramid looks for.
        thresholds: Face-probability thresholds of P-Net, R-Net and O-Net.
        factor: Scale ratio between pyramid levels.
        batch_size: Frames run through the pyramid together (bounds memory on large frames).
    """

    def __init__(
        self,
        *,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        batch_size: int = 32,
    ) -> None:
        super().__init__()
        if min_face_size < _PNET_CELL:
            raise ValueError(f"min_face_size must be at least {_PNET_CELL}, got {min_face_size}")
        if not 0 < factor < 1 or len(thresholds) != 3 or batch_size < 1:
            raise ValueError("MTCNN needs 0 < factor < 1, three thresholds and batch_size >= 1")
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()
        self.min_face_size = min_face_size
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = factor
        self.batch_size = batch_size
        self.to(memory_format=torch.channels_last)  # see _normalise; loading weights keeps it
        self.eval()

    def load_pretrained(self) -> MTCNN:
        """Load the facenet-pytorch weights from the vidfer assets (cached per process)."""
        for net, state in zip((self.pnet, self.rnet, self.onet), _pretrained_states(), strict=True):
            net.load_state_dict(state)
        return self

    @torch.inference_mode()
    def detect(self, frames: np.ndarray) -> list[FrameFaces]:
        """Detect faces and landmarks in every frame.

        Args:
            frames: ``(T, H, W, 3)`` uint8 RGB.

        Returns:
            One :class:`FrameFaces` per frame: boxes ``(n, 4)``, probabilities ``(n,)`` and
            landmarks ``(n, 5, 2)`` ordered left eye, right eye, nose, left mouth corner, right
            mouth corner (left = image left), best score first.
        """
        results: list[FrameFaces] = []
        for start in range(0, len(frames), self.batch_size):
            images = self._images(frames[start : start + self.batch_size])
            results.extend(self._detect_batch(images))
        return results

    @torch.inference_mode()
    def refine(self, frames: np.ndarray, boxes: Sequence[np.ndarray]) -> list[FrameFaces]:
        """O-Net alone on given boxes: the cascade's last stage, to follow known faces cheaply.

        Each box is squared about its centre (as R-Net's output is before O-Net) and re-scored;
        boxes scoring above O-Net's threshold come back regressed, with landmarks, exactly as
        :meth:`detect` returns O-Net's survivors. Fed the previous frame's boxes, this carries
        faces from frame to frame at the cost of one 48x48 crop per face.

        Args:
            frames: ``(T, H, W, 3)`` uint8 RGB.
            boxes: Per frame, ``(n_t, 4)`` boxes ``x1, y1, x2, y2`` to look in.

        Returns:
            One :class:`FrameFaces` per frame, as :meth:`detect` gives.
        """
        if len(boxes) != len(frames):
            raise ValueError(
                f"refine needs one box array per frame; got {len(boxes)} for {len(frames)}"
            )
        results: list[FrameFaces] = []
        device = next(self.parameters()).device
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start : start + self.batch_size]
            mine = [
                np.asarray(b, np.float32).reshape(-1, 4) for b in boxes[start : start + len(chunk)]
            ]
            cand = square_boxes(torch.from_numpy(np.concatenate(mine)).to(device))  # (K, 4)
            owner = torch.repeat_interleave(torch.tensor([len(b) for b in mine]))  # (K,) frame
            if not len(cand):
                results.extend(FrameFaces.empty(5) for _ in range(len(chunk)))
                continue
            crops = self._crops_near(chunk, cand, owner, 48)  # (K, 3, 48, 48)
            found = self._scored_output(crops, cand, owner.to(device))
            results.extend(_per_frame(len(chunk), *found))
        return results

    def _crops_near(
        self, frames: np.ndarray, boxes: torch.Tensor, owner: torch.Tensor, size: int
    ) -> torch.Tensor:
        """Crops ``(K, 3, size, size)`` of boxes ``(K, 4)`` of ``(T, H, W, 3)`` uint8 frames
        (``owner`` ``(K,)``: each box's frame), normalised, each resampled from its frame's
        pixels round the box only: what :func:`crop_boxes` of the whole frame gives, to float
        rounding, without converting whole (HD) frames to float for a face or two each."""
        height, width = frames.shape[1:3]
        crops = torch.zeros((len(boxes), 3, size, size), device=boxes.device)
        for k, ((x1, y1, x2, y2), frame) in enumerate(
            zip(boxes.tolist(), owner.tolist(), strict=True)
        ):
            # A box samples pixel edges [x1 - 1, x2] (centres 0.5 in) and their bilinear
            # neighbours: 3 pixels either side hold them all; beyond the frame stays zero.
            left, top = max(0, math.floor(x1) - 3), max(0, math.floor(y1) - 3)
            right, bottom = min(width, math.ceil(x2) + 3), min(height, math.ceil(y2) + 3)
            if right <= left or bottom <= top:
                continue  # the box lies outside the frame: all zero
            part = self._images(frames[frame : frame + 1, top:bottom, left:right])  # (1, 3, h, w)
            moved = boxes[k : k + 1] - boxes.new_tensor([left, top, left, top])  # (1, 4)
            crops[k] = crop_boxes(part, owner.new_zeros(1).to(boxes.device), moved, size)[0]
        return _normalise(crops)

    def _images(self, frames: np.ndarray) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 frames as ``(N, 3, H, W)`` float on the networks' device."""
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}"
            )
        device = next(self.parameters()).device
        chunk = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
        return chunk.permute(0, 3, 1, 2).float()  # (N, H, W, 3) -> (N, 3, H, W)

    def _detect_batch(self, images: torch.Tensor) -> list[FrameFaces]:
        num = images.shape[0]
        boxes, frames = self._propose(images)
        if len(boxes):
            boxes, frames = self._refine(images, boxes, frames)
        if not len(boxes):
            return [FrameFaces.empty(5) for _ in range(num)]
        return _per_frame(num, *self._output(images, boxes, frames))

    def _propose(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1: P-Net over the pyramid; every level runs on all frames of the batch at once.

        Returns:
            Square candidate boxes ``(K, 4)`` and their frame indices ``(K,)``.
        """
        _, _, height, width = images.shape
        level_boxes, level_frames = [], []
        for scale in pyramid_scales(height, width, self.min_face_size, self.factor):
            size = (int(height * scale + 1), int(width * scale + 1))
            level = F.interpolate(images, size=size, mode="area")  # (N, 3, h, w)
            offsets, prob = _pnet_calls(self.pnet, _normalise(level))  # (N, 4, h', w'), (N, h', w')
            hits = (prob >= self.thresholds[0]).nonzero()  # (K, 3): frame, row, col
            frames = hits[:, 0]
            scores = prob[hits[:, 0], hits[:, 1], hits[:, 2]]  # (K,)
            deltas = offsets.permute(0, 2, 3, 1)[hits[:, 0], hits[:, 1], hits[:, 2]]  # (K, 4)
            # Window (col, row) of the level maps back to the frame with the cascade's 1-based
            # corners: floor((2 * c + 1) / scale) .. floor((2 * c + 12) / scale).
            cell = hits[:, [2, 1]].to(images.dtype)  # (K, 2) as x, y
            top_left = torch.floor((_PNET_STRIDE * cell + 1) / scale)
            bottom_right = torch.floor((_PNET_STRIDE * cell + _PNET_CELL) / scale)
            windows = torch.cat([top_left, bottom_right], dim=1)  # (K, 4)
            keep = batched_nms(windows, scores, frames, 0.5)
            level_boxes.append(torch.cat([windows, scores[:, None], deltas], dim=1)[keep])
            level_frames.append(frames[keep])
        if not level_boxes:
            return images.new_zeros((0, 4)), torch.zeros(0, dtype=torch.long, device=images.device)
        cand = torch.cat(level_boxes)  # (K, 9): box, score, offsets
        frames = torch.cat(level_frames)
        keep = batched_nms(cand[:, :4], cand[:, 4], frames, 0.7)
        cand, frames = cand[keep], frames[keep]
        # P-Net's offsets are in units of the exclusive window size (no +1), unlike later stages.
        wh = cand[:, 2:4] - cand[:, 0:2]  # (K, 2)
        boxes = cand[:, 0:4] + cand[:, 5:9] * wh.repeat(1, 2)
        return square_boxes(boxes), frames

    def _refine(
        self, images: torch.Tensor, boxes: torch.Tensor, frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2: R-Net re-scores 24x24 crops; survivors are regressed and squared."""
        crops = _normalise(crop_boxes(images, frames, boxes, 24))  # (K, 3, 24, 24)
        offsets, scores = _candidate_calls(self.rnet, crops)
        ok = scores > self.thresholds[1]
        boxes, offsets, scores, frames = boxes[ok], offsets[ok], scores[ok], frames[ok]
        keep = batched_nms(boxes, scores, frames, 0.7)
        return square_boxes(regress_boxes(boxes[keep], offsets[keep])), frames[keep]

    def _output(
        self, images: torch.Tensor, boxes: torch.Tensor, frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 3: O-Net's final scores, boxes and landmarks (``(K, 5, 2)``)."""
        crops = _normalise(crop_boxes(images, frames, boxes, 48))  # (K, 3, 48, 48)
        return self._scored_output(crops, boxes, frames)

    def _scored_output(
        self, crops: torch.Tensor, boxes: torch.Tensor, frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """O-Net on the crops ``(K, 3, 48, 48)`` of ``boxes`` ``(K, 4)``: stage 3's result."""
        offsets, points, scores = _candidate_calls(self.onet, crops)
        ok = scores > self.thresholds[2]
        boxes, offsets, points = boxes[ok], offsets[ok], points[ok]
        scores, frames = scores[ok], frames[ok]
        # Landmarks are fractions of the (inclusive) box size, relative to its 0-based corner.
        wh = boxes[:, 2:4] - boxes[:, 0:2] + 1  # (K, 2)
        fractions = points.reshape(-1, 2, 5).permute(0, 2, 1)  # (K, 10) -> (K, 2, 5) -> (K, 5, 2)
        landmarks = fractions * wh[:, None, :] + boxes[:, None, 0:2] - 1  # (K, 5, 2)
        boxes = regress_boxes(boxes, offsets)
        if not len(boxes):
            return boxes, scores, landmarks, frames
        keep = batched_nms_min(boxes, scores, frames, 0.7)
        return boxes[keep], scores[keep], landmarks[keep], frames[keep]


def _per_frame(
    num: int,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    landmarks: torch.Tensor,
    frames: torch.Tensor,
) -> list[FrameFaces]:
    """Split a batch's O-Net survivors (boxes ``(K, 4)``, ``(K,)``, ``(K, 5, 2)``, frame
    indices ``(K,)``) into one :class:`FrameFaces` per frame of the batch, as numpy arrays.

    The survivors come to the CPU once per batch (one copy from a GPU, not one per frame).
    """
    box, score, points, owner = (t.cpu().numpy() for t in (boxes, scores, landmarks, frames))
    out = []
    for i in range(num):
        mine = owner == i
        out.append(
            FrameFaces(
                box[mine].astype(np.float32),
                score[mine].astype(np.float32),
                points[mine].astype(np.float32),
            )
        )
    return out


@functools.cache
def _pretrained_states() -> tuple[dict[str, torch.Tensor], ...]:
    """The three facenet-pytorch state dicts, read once per process."""
    return tuple(
        read_state_dict(asset_path(name)) for name in ("mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet")
    )


def load_mtcnn(
    *, min_face_size: int = 20, batch_size: int = 32, device: str | torch.device = "cpu"
) -> MTCNN:
    """Build an :class:`MTCNN` with the pretrained weights of the vidfer assets.

    Raises:
        AssetError: if the weights have not been fetched (``vidfer assets fetch``).
    """
    return MTCNN(min_face_size=min_face_size, batch_size=batch_size).load_pretrained().to(device)
