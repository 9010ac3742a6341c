"""The per-frame steps of preprocessing and the limits they run under, shared by ``vidfer prepare``
(:mod:`vidfer.data.prepare`) and piecewise reading (:mod:`vidfer.data.stream`).

Every step here works frame by frame, so a video can be finished in pieces of any size with the
same result as in one array. This module does not import torch.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.config.faces import FaceConfig
from vidfer.errors import (
    CrashedVideoError,
    OutOfMemoryVideoError,
    QuarantinedVideoError,
    TimedOutVideoError,
)
from vidfer.io.sandbox import Failure
from vidfer.io.video_probe import VideoLimits


def video_limits(config: LimitsConfig) -> VideoLimits:
    """The I/O layer's limits from their config section."""
    return VideoLimits(
        max_file_bytes=int(config.max_file_mb * 1024 * 1024),
        max_width=config.max_width,
        max_height=config.max_height,
        max_duration_s=config.max_duration_s,
        max_frames=config.max_frames,
    )


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Center-crop frames ``(T, H, W, C)`` to ``(T, size, size, C)`` (no-op on a short side)."""
    height, width = frames.shape[1:3]
    top = max((height - size) // 2, 0)
    left = max((width - size) // 2, 0)
    return frames[:, top : top + size, left : left + size]


def to_grayscale(frames: np.ndarray) -> np.ndarray:
    """RGB frames ``(T, H, W, 3)`` to grayscale repeated on 3 channels ``(T, H, W, 3)``."""
    # cv2 converts a (T*H, W, 3) image in one call: stack the frames vertically.
    count, height, width, _ = frames.shape
    gray = cv2.cvtColor(
        np.ascontiguousarray(frames).reshape(count * height, width, 3), cv2.COLOR_RGB2GRAY
    )  # (T*H, W)
    gray = gray.reshape(count, height, width, 1)  # (T, H, W, 1)
    return np.repeat(gray, 3, axis=3)  # (T, H, W, 3)


def finish_frames(frames: np.ndarray, prep: PrepareConfig) -> np.ndarray:
    """The last, per-frame steps of preprocessing: decoded frames or face crops to stored frames.

    Center crop (without faces, when ``prep.crop``), gray crops to 3 channels, grayscale.
    Frame by frame, so a video can be finished in pieces.
    """
    if prep.face_config() is None and prep.crop:
        frames = center_crop(frames, prep.size)
    if frames.shape[3] == 1:
        frames = np.repeat(frames, 3, axis=3)  # gray face crops: (T, S, S, 1) -> (T, S, S, 3)
    if prep.grayscale:
        frames = to_grayscale(frames)
    return frames


def no_face_reason(fraction: float, frames: int, faces: FaceConfig) -> str:
    """The rejection reason of a video whose main face was found in too few frames."""
    return (
        f"main face found in {fraction:.0%} of {frames} frames, "
        f"below faces.min_face_fraction={faces.min_face_fraction}"
    )


_QUARANTINED: dict[str, type[QuarantinedVideoError]] = {
    error.status: error for error in (CrashedVideoError, TimedOutVideoError, OutOfMemoryVideoError)
}


def quarantine_error(
    path: object, failure: Failure, limits: LimitsConfig, what: str
) -> QuarantinedVideoError:
    """The error of a video whose sandboxed worker crashed, overran its time or its memory.

    Args:
        path: The video file.
        failure: What the sandbox saw.
        limits: The limits the worker ran under (the reason names the one to raise).
        what: The start of the reason, e.g. ``quarantined: preparing it failed``.

    Returns:
        The error of ``failure.status``, its reason ``WHAT, what happened[; the limit to
        raise]``.
    """
    option = {
        "timeout": f"; raise data.limits.decode_timeout_s={limits.decode_timeout_s:g} to retry",
        "out_of_memory": f"; raise data.limits.decode_memory_mb={limits.decode_memory_mb} to retry",
    }.get(failure.status, "")
    return _QUARANTINED[failure.status](path, f"{what}, {failure.reason}{option}")
