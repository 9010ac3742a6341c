"""MTCNN face detection with 5 landmarks (Zhang et al., 2016), batched over the frames of a video.

The three networks carry the parameter names of facenet-pytorch 2.6.0, so its ``pnet.pt``,
``rnet.pt`` and ``onet.pt`` state dicts (vidfer assets ``mtcnn_pnet``/``mtcnn_rnet``/``mtcnn_onet``)
load unchanged. The cascade follows the original algorithm with facenet-pytorch's conventions:

* pixels are normalised as ``(x - 127.5) * 0.0078125`` before every network;
* the image pyramid starts at scale ``12 / min_face_size`` and shrinks by ``factor`` while the
  short side stays at least 12 pixels; each level is resized from the full frame by area averaging
  (the first stage, P-Net over the pyramid, is :mod:`vidfer.faces.proposals`);
* box corners follow the cascade's (MATLAB-born) convention where a box ``x1..x2`` covers pixel
  columns ``x1 - 1 .. x2 - 1``; landmarks are 0-based pixel coordinates, as facenet-pytorch returns
  them;
* the original weights were trained on transposed images: facenet-pytorch transposed the
  convolution kernels instead, which leaves the flatten before R-Net's and O-Net's dense layers in
  (W, H, C) order — reproduced in :mod:`vidfer.faces.mtcnn_nets`, the networks' module.

:meth:`MTCNN.detect_near` runs the same cascade on the pyramid levels' pixels around given boxes
only (:mod:`vidfer.faces.regions`), for the faces there as :meth:`MTCNN.detect` finds them;
:meth:`MTCNN.refine` runs O-Net alone on given boxes.

Where facenet-pytorch 2.6.0 clamps a box to the frame and stretches the clipped crop, this module
crops with zero padding as the original cascade does (:func:`vidfer.faces.box_ops.roi_align`,
torchvision's ``roi_align`` without importing torchvision), so a face at the border is not
distorted before R-Net/O-Net.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from vidfer.assets import asset_path
from vidfer.faces.box_ops import (
    batched_nms,
    batched_nms_min,
    crop_boxes,
    regress_boxes,
    square_boxes,
)
from vidfer.faces.mtcnn_nets import ONet, PNet, RNet, candidate_calls, normalise
from vidfer.faces.proposals import Pyramid, propose, propose_near
from vidfer.faces.regions import PNET_CELL, search_regions
from vidfer.faces.types import FrameFaces
from vidfer.io.checkpoint import read_state_dict

logger = logging.getLogger(__name__)

Sources = torch.Tensor | None  # the frame of each NMS group (None: groups are frames)
_BATCH_PIXELS = 1 << 21  # frame pixels made float at once, at least a frame (see _batches)


class MTCNN(nn.Module):
    """The three-stage cascade over batches of video frames.

    Args:
        min_face_size: Smallest face side, in pixels, that the pyramid looks for.
        thresholds: Face-probability thresholds of P-Net, R-Net and O-Net.
        factor: Scale ratio between pyramid levels.
        batch_size: Frames run through the pyramid together (bounds memory; fewer on frames
            so large that they would hold over 2^21 pixels).
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
        if min_face_size < PNET_CELL:
            raise ValueError(f"min_face_size must be at least {PNET_CELL}, got {min_face_size}")
        if not 0 < factor < 1 or len(thresholds) != 3 or batch_size < 1:
            raise ValueError("MTCNN needs 0 < factor < 1, three thresholds and batch_size >= 1")
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()
        self.min_face_size = min_face_size
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = factor
        self.batch_size = batch_size
        self.to(memory_format=torch.channels_last)  # see normalise; loading weights keeps it
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
        for batch in self._batches(frames):
            results.extend(self._detect_batch(*self._images(frames[batch])))
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
        results: list[FrameFaces] = []
        device = next(self.parameters()).device
        for chunk, mine in self._boxed_batches(frames, boxes, "refine"):
            cand = square_boxes(torch.from_numpy(np.concatenate(mine)).to(device))  # (K, 4)
            owner = torch.repeat_interleave(torch.tensor([len(b) for b in mine])).to(device)
            if not len(cand):
                results.extend(FrameFaces.empty(5) for _ in range(len(chunk)))
                continue
            crops = normalise(crop_boxes(self._pixels(chunk), owner, cand, 48))  # (K, 3, 48, 48)
            results.extend(_per_frame(len(chunk), *self._output(crops, cand, owner)))
        return results

    @torch.inference_mode()
    def detect_near(
        self,
        frames: np.ndarray,
        boxes: Sequence[np.ndarray],
        *,
        margin: float = 1.0,
        smallest: float = 0.0,
        largest: float = math.inf,
    ) -> list[FrameFaces]:
        """The full cascade restricted to regions around given boxes: what :meth:`detect` finds
        there, at a fraction of its cost.

        Each box is grown by ``margin`` times its longer side on every side (clipped to the
        frame); P-Net runs on the pyramid levels' pixels of that region only, computed with the
        whole levels' bins and cell grid (:mod:`vidfer.faces.regions`), then R-Net and O-Net run as
        in :meth:`detect`. A face whose box is centred inside a given box comes back as
        :meth:`detect` gives it (to float rounding) as long as the margin holds every candidate
        box that the whole frame's non-maximum suppressions would weigh against its own: about
        a face width around it does. Unlike :meth:`refine`, the result does not depend on how
        well the given boxes fit the faces.

        Args:
            frames: ``(T, H, W, 3)`` uint8 RGB.
            boxes: Per frame, ``(n_t, 4)`` boxes ``x1, y1, x2, y2`` to look around.
            margin: Region around each box, in multiples of its longer side per side.
            smallest: The smallest face looked for around a box, as a fraction of its longer
                side (the pyramid levels for smaller faces are skipped); 0: as :meth:`detect`.
            largest: The largest P-Net window looked at around a box, likewise (the coarser
                levels, whose windows mostly hold the region whole, are skipped); infinite: as
                :meth:`detect`.

        Returns:
            One :class:`FrameFaces` per frame, as :meth:`detect` gives, holding the faces centred
            inside the frame's boxes.
        """
        if margin < 0 or not 0 <= smallest < largest:
            raise ValueError(
                "detect_near needs margin >= 0 and 0 <= smallest < largest; "
                f"got {margin}, {smallest}, {largest}"
            )
        results: list[FrameFaces] = []
        for chunk, mine in self._boxed_batches(frames, boxes, "detect_near"):
            results.extend(
                self._detect_regions(*self._images(chunk), mine, margin, (smallest, largest))
            )
        return results

    def _boxed_batches(
        self, frames: np.ndarray, boxes: Sequence[np.ndarray], method: str
    ) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """Batches of ``frames`` (see :meth:`_batches`) and their ``(n_i, 4)`` float32 boxes."""
        if len(boxes) != len(frames):
            raise ValueError(
                f"{method} needs one box array per frame; got {len(boxes)} for {len(frames)}"
            )
        for batch in self._batches(frames):
            mine = boxes[batch]
            yield frames[batch], [np.asarray(b, np.float32).reshape(-1, 4) for b in mine]

    def _batches(self, frames: np.ndarray) -> Iterator[slice]:
        """The batches of ``(T, H, W, 3)`` frames run together: ``batch_size`` frames, fewer
        when they would hold over ``_BATCH_PIXELS`` pixels (at least one frame).

        A batch is made float whole (``(N, 3, H, W)``, 12 bytes a pixel) and its pyramid levels
        and crops follow. On HD frames, 32 frames at once would make hundreds of megabytes, of
        sizes changing with the number of frames detected at once; freed, they leave the heap
        too fragmented to reuse, and a preparation worker's peak memory creeps up with the
        video's length. Small videos still go 32 frames at once.
        """
        height, width = frames.shape[1:3]
        size = max(1, min(self.batch_size, _BATCH_PIXELS // max(1, height * width)))
        return (slice(start, start + size) for start in range(0, len(frames), size))

    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 frames as they are, on the networks' device (the crops read
        them)."""
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}"
            )
        device = next(self.parameters()).device
        return torch.from_numpy(np.ascontiguousarray(frames)).to(device)

    def _images(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, H, W, 3)`` uint8 frames on the networks' device: as they are
        (:meth:`_pixels`), and as ``(N, 3, H, W)`` float (the pyramid's)."""
        chunk = self._pixels(frames)
        # (N, H, W, 3) -> (N, 3, H, W), laid out as NCHW (made so as uint8, a quarter of the
        # float's bytes): the pyramid's area resizing of a 3-channel image runs about twice as
        # fast in that layout as in channels_last.
        return chunk, chunk.permute(0, 3, 1, 2).contiguous().float()

    def _detect_batch(self, pixels: torch.Tensor, images: torch.Tensor) -> list[FrameFaces]:
        num = images.shape[0]
        boxes, frames = propose(self.pnet, images, self._pyramid())
        if len(boxes):
            boxes, frames = self._refine(pixels, boxes, frames, None)
        if not len(boxes):
            return [FrameFaces.empty(5) for _ in range(num)]
        crops = normalise(crop_boxes(pixels, frames, boxes, 48))  # (K, 3, 48, 48)
        return _per_frame(num, *self._output(crops, boxes, frames))

    def _detect_regions(
        self,
        pixels: torch.Tensor,
        images: torch.Tensor,
        boxes: Sequence[np.ndarray],
        margin: float,
        windows: tuple[float, float],
    ) -> list[FrameFaces]:
        """:meth:`detect_near` of one batch (``pixels`` ``(N, H, W, 3)`` uint8, ``images`` the
        same as ``(N, 3, H, W)`` float): ``boxes`` ``(n_i, 4)`` per frame, P-Net windows from
        ``windows[0]`` to ``windows[1]`` box sides."""
        num, _, height, width = images.shape
        near = np.concatenate(boxes).astype(np.float64)  # (R, 4)
        if not len(near):
            return [FrameFaces.empty(5) for _ in range(num)]
        sources = torch.repeat_interleave(torch.tensor([len(b) for b in boxes])).to(images.device)
        regions = search_regions(near, margin, height, width)  # (R, 4)
        sides = (near[:, 2:4] - near[:, 0:2]).max(axis=1)  # (R,)
        smallest, largest = windows[0] * sides, windows[1] * sides  # (R,) frame pixels each
        cand, groups = propose_near(
            self.pnet, images, self._pyramid(), sources, regions, smallest, largest
        )
        if len(cand):
            cand, groups = self._refine(pixels, cand, groups, sources)
        if not len(cand):
            return [FrameFaces.empty(5) for _ in range(num)]
        crops = normalise(crop_boxes(pixels, sources[groups], cand, 48))  # (K, 3, 48, 48)
        found, scores, landmarks, groups = self._output(crops, cand, groups)
        # Keep the faces centred in the box they were looked for in; one face looked for in two
        # overlapping boxes of a frame is found twice: the frame's O-Net NMS keeps one.
        centre = (found[:, 0:2] + found[:, 2:4]) / 2  # (K, 2)
        wanted = torch.from_numpy(near).to(found)[groups]  # (K, 4)
        inside = ((centre >= wanted[:, 0:2]) & (centre <= wanted[:, 2:4])).all(dim=1)
        keep = inside.nonzero()[:, 0]  # (k,)
        if len(keep):
            frames = sources[groups[keep]]
            keep = keep[batched_nms_min(found[keep], scores[keep], frames, 0.7)]
        found, scores, landmarks, frames = (
            found[keep],
            scores[keep],
            landmarks[keep],
            sources[groups[keep]],
        )
        return _per_frame(num, found, scores, landmarks, frames)

    def _pyramid(self) -> Pyramid:
        """The first stage's pyramid and threshold."""
        return Pyramid(self.min_face_size, self.factor, self.thresholds[0])

    def _refine(
        self, pixels: torch.Tensor, boxes: torch.Tensor, groups: torch.Tensor, sources: Sources
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2: R-Net re-scores 24x24 crops of ``pixels`` ``(N, H, W, 3)``; survivors are
        regressed and squared.

        ``groups`` ``(K,)`` are the boxes' NMS groups, ``sources`` the frame of each group (None:
        the groups are the frames).
        """
        frames = groups if sources is None else sources[groups]
        crops = normalise(crop_boxes(pixels, frames, boxes, 24))  # (K, 3, 24, 24)
        offsets, scores = candidate_calls(self.rnet, crops)
        ok = scores > self.thresholds[1]
        boxes, offsets, scores, groups = boxes[ok], offsets[ok], scores[ok], groups[ok]
        keep = batched_nms(boxes, scores, groups, 0.7)
        return square_boxes(regress_boxes(boxes[keep], offsets[keep])), groups[keep]

    def _output(
        self, crops: torch.Tensor, boxes: torch.Tensor, groups: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 3 on the boxes' normalised 48x48 crops ``(K, 3, 48, 48)``: O-Net's final
        boxes, scores, landmarks (``(K, 5, 2)``) and NMS groups ``(K,)``."""
        offsets, points, scores = candidate_calls(self.onet, crops)
        ok = scores > self.thresholds[2]
        boxes, offsets, points = boxes[ok], offsets[ok], points[ok]
        scores, groups = scores[ok], groups[ok]
        # Landmarks are fractions of the (inclusive) box size, relative to its 0-based corner.
        wh = boxes[:, 2:4] - boxes[:, 0:2] + 1  # (K, 2)
        fractions = points.reshape(-1, 2, 5).permute(0, 2, 1)  # (K, 10) -> (K, 2, 5) -> (K, 5, 2)
        landmarks = fractions * wh[:, None, :] + boxes[:, None, 0:2] - 1  # (K, 5, 2)
        boxes = regress_boxes(boxes, offsets)
        if not len(boxes):
            return boxes, scores, landmarks, groups
        keep = batched_nms_min(boxes, scores, groups, 0.7)
        return boxes[keep], scores[keep], landmarks[keep], groups[keep]


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
