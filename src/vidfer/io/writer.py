"""Write RGB frame arrays as video files with PyAV, atomically.

The encoder writes to a temporary file beside the destination (with the destination's extension,
from which FFmpeg picks the container format); the file is fsynced and renamed over the
destination (:func:`vidfer.io.atomic.atomic_path`), so a reader never sees a half-written video.
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.video.stream import VideoStream

from vidfer.io.atomic import atomic_path

logger = logging.getLogger(__name__)

# Containers whose index (the ``moov`` atom) FFmpeg can move to the front, so that players can
# start before the whole file is read and a truncated file still yields its first frames.
_FASTSTART_SUFFIXES = frozenset({".mp4", ".m4v", ".mov"})


def write_video(
    path: str | os.PathLike[str],
    frames: npt.NDArray[np.uint8],
    fps: float,
    *,
    codec: str = "libx264",
    crf: int = 18,
    pix_fmt: str = "yuv420p",
) -> None:
    """Encode ``frames`` into the video file ``path`` (pixel format yuv420p by default).

    yuv420p stores colour at half resolution, so H.264 needs even frame sizes: an odd width or
    height is padded by repeating the last column or row, and the written video is then one
    pixel wider or taller than ``frames``. ``codec="libx264rgb", crf=0, pix_fmt="rgb24"``
    stores the RGB pixels exactly (a lossless video that decodes to ``frames``).

    Args:
        path: Destination; its extension picks the container (``.mp4``, ``.mkv``, ``.avi``...).
            Its folder is created if missing.
        frames: ``uint8 (T, H, W, 3)`` RGB frames, ``T >= 1``.
        fps: Frame rate, > 0.
        codec: FFmpeg encoder name.
        crf: Constant rate factor (quality; lower is better, 0 is lossless for libx264: lossless
            in YUV, so the RGB pixels come back exactly only with an RGB ``pix_fmt``).
            Encoders without a ``crf`` option ignore it. Lossy libx264 output is not always
            bit-reproducible from one process to the next (seen on 48x48 frames, even with
            one thread); lossless output is, so use ``crf=0`` where a seed must fix the pixels.
        pix_fmt: The stream's pixel format (sizes are padded to even ones for yuv420p only).

    Raises:
        ValueError: ``frames``, ``fps`` or ``codec`` are invalid.
        av.FFmpegError: The encoder or the container rejects the settings; nothing is written.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be a uint8 (T, H, W, 3) RGB array, got {frames.dtype} {frames.shape}"
        )
    if frames.shape[0] == 0:
        raise ValueError(f"frames holds no frame; cannot write an empty video to {path}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    try:
        is_video = av.Codec(codec, "w").type == "video"
    except av.codec.codec.UnknownCodecError:
        is_video = False
    if not is_video:
        raise ValueError(f"codec {codec!r} is not a video encoder; use e.g. 'libx264'")
    _, height, width, _ = frames.shape
    pad_h, pad_w = (height % 2, width % 2) if pix_fmt == "yuv420p" else (0, 0)
    if pad_h or pad_w:
        logger.debug("%s: padding %dx%d frames to even size for yuv420p", path, width, height)
    # The encoder's time base is 1/rate; a small denominator keeps NTSC rates such as 30000/1001
    # exact while turning binary floats like 29.97 into 2997/100 rather than a huge fraction.
    rate = Fraction(fps).limit_denominator(1001)
    dest = Path(path)
    options = {"movflags": "+faststart"} if dest.suffix.lower() in _FASTSTART_SUFFIXES else {}
    with atomic_path(dest) as tmp, av.open(str(tmp), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=rate, options={"crf": str(crf)})
        if not isinstance(stream, VideoStream):  # checked above; narrows the type
            raise TypeError(f"{codec!r} opened a {stream.type} stream")
        stream.width, stream.height = width + pad_w, height + pad_h
        stream.pix_fmt = pix_fmt
        for image in frames:
            if pad_h or pad_w:
                # (H, W, 3) -> (H + pad_h, W + pad_w, 3), edge values repeated.
                image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the encoder's delayed frames
