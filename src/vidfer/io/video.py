"""Decode video files and frame folders with PyAV, with limits on untrusted input.

A path that is a folder is a frame folder (:mod:`vidfer.io.frame_folder`): its images are the
frames, at the nominal rate ``frame_folder_fps``, decoded one by one (none re-encoded) and
converted exactly as a video's frames are, so that a frame folder and the same frames in a
lossless video give the same arrays. Everything below holds for both.

The header is first checked as :func:`vidfer.io.video_probe.probe` does (against
:class:`~vidfer.io.video_probe.VideoLimits`), then :func:`iter_frames` streams
``(original index, RGB frame)`` pairs for long videos; :func:`decode_chunks` groups the same
stream into pieces of bounded size, and :func:`decode` collects it into one array
(:func:`probe_source` checks a file or a folder without decoding anything). All optionally
subsample to a target frame rate and resize so that the shorter side has a given length
(in swscale, during the pixel-format conversion).

Timing assumes a constant frame rate (the stream's average rate): frame ``i`` is taken to be shown
at ``i / fps``. Variable-frame-rate files are therefore treated as if their frames were evenly
spaced, which is what the clip samplers downstream assume as well.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import av
import numpy as np
import numpy.typing as npt
from av.container import InputContainer

from vidfer.errors import (
    ConfigError,
    EmptyVideoError,
    TruncatedVideoError,
    UndecodableVideoError,
)
from vidfer.io.frame_folder import FRAME_FOLDER_FPS, decode_image, probe_folder
from vidfer.io.video_probe import (
    VideoInfo,
    VideoLimits,
    ffmpeg_reason,
    open_input,
    probe,
    too_large,
    video_stream,
)

logger = logging.getLogger(__name__)

# Area averaging avoids the aliasing that bilinear shows when shrinking by large factors.
_INTERPOLATION = "AREA"

Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class DecodedVideo:
    """Frames decoded from one video.

    Attributes:
        frames: ``uint8 (T, H, W, 3)`` RGB frames.
        frame_indices: ``int64 (T,)`` index in the original stream of each kept frame.
        fps: Effective frame rate of ``frames`` (the target rate after subsampling).
        info: Header metadata of the source file.
        truncated: The file ends inside the video data after ``frames`` were decoded: it was
            cut short and later frames are missing. A file cut exactly between two packets
            decodes without error; it shows only as fewer frames than ``info.num_frames`` (not
            flagged, because edit lists legitimately hide frames). Damaged data inside the
            file raises :class:`UndecodableVideoError` instead.
    """

    frames: npt.NDArray[np.uint8]
    frame_indices: npt.NDArray[np.int64]
    fps: float
    info: VideoInfo
    truncated: bool = False


def iter_frames(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    short_side: int | None = None,
    limits: VideoLimits = VideoLimits(),
    frame_folder_fps: float = FRAME_FOLDER_FPS,
) -> Iterator[tuple[int, Frame]]:
    """Stream the frames of a video without holding them all in memory.

    The file is probed (and checked against ``limits``) when this function is called, so header
    errors surface here; decoding starts at the first ``next()``.

    Args:
        path: Video file or frame folder.
        fps: Target frame rate; for each time ``k / fps`` the nearest source frame is kept.
            ``None``, or a rate at or above the source rate, keeps every frame (never upsamples).
        short_side: Resize so that the shorter side has this many pixels, keeping the aspect
            ratio (up- or downscaling). ``None`` keeps the source size.
        limits: Bounds for untrusted input.
        frame_folder_fps: The nominal frame rate of a frame folder (unused for a file).

    Returns:
        An iterator of ``(index in the original stream, uint8 (H, W, 3) RGB frame)``.

    Raises:
        VideoError: As :func:`~vidfer.io.video_probe.probe`, at call time.
        ConfigError: ``fps`` or ``short_side`` is not positive, at call time.
        CorruptVideoError: From the iterator, when decoding fails; frames already yielded are
            valid.
        VideoTooLargeError: From the iterator, when the stream holds more frames than
            ``limits.max_frames`` although its header said otherwise.
    """
    source = _Source.probe(path, frame_folder_fps, limits)
    return source.frames(_Plan.make(source.info, fps, short_side), limits)


def decode(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    short_side: int | None = None,
    max_frames: int | None = None,
    limits: VideoLimits = VideoLimits(),
    frame_folder_fps: float = FRAME_FOLDER_FPS,
) -> DecodedVideo:
    """Decode a whole video (or its first ``max_frames`` kept frames) into one array.

    A file cut short is not rejected when some frames decode: the frames before the cut are
    returned with ``truncated=True``.

    Args:
        path: Video file or frame folder.
        fps: Target frame rate, as in :func:`iter_frames`.
        short_side: Shorter-side length after resizing, as in :func:`iter_frames`.
        max_frames: Stop after this many kept frames; ``None`` decodes to the end.
        limits: Bounds for untrusted input.
        frame_folder_fps: The nominal frame rate of a frame folder (unused for a file).

    Returns:
        The decoded frames, their original indices and the effective frame rate.

    Raises:
        VideoError: As :func:`~vidfer.io.video_probe.probe`.
        ConfigError: ``fps``, ``short_side`` or ``max_frames`` is not positive.
        TruncatedVideoError: The file is cut short before the first kept frame.
        UndecodableVideoError: The video data is damaged (wherever the damage is).
        EmptyVideoError: The stream holds no decodable frame.
        VideoTooLargeError: The stream exceeds ``limits`` although its header did not.
    """
    # One piece holds every kept frame (limits.max_frames bounds the stream).
    whole = max_frames if max_frames is not None else limits.max_frames
    pieces = list(
        decode_chunks(
            path,
            whole,
            fps=fps,
            short_side=short_side,
            max_frames=max_frames,
            limits=limits,
            frame_folder_fps=frame_folder_fps,
        )
    )
    # Two pieces only when the damage came right after the first (the second is then empty).
    return DecodedVideo(
        frames=pieces[0].frames,
        frame_indices=pieces[0].frame_indices,
        fps=pieces[0].fps,
        info=pieces[0].info,
        truncated=pieces[-1].truncated,
    )


def decode_chunks(
    path: str | os.PathLike[str],
    chunk_frames: int,
    *,
    fps: float | None = None,
    short_side: int | None = None,
    max_frames: int | None = None,
    limits: VideoLimits = VideoLimits(),
    frame_folder_fps: float = FRAME_FOLDER_FPS,
) -> Iterator[DecodedVideo]:
    """Decode a video as consecutive pieces of at most ``chunk_frames`` kept frames.

    Memory holds one piece at a time whatever the video's length (``vidfer predict`` on long
    videos). The pieces concatenated are exactly :func:`decode`'s frames. The file is probed
    (and checked against ``limits``) when this function is called.

    Args:
        path: Video file or frame folder.
        chunk_frames: Kept frames per piece (the last piece may hold fewer).
        fps: Target frame rate, as in :func:`iter_frames`.
        short_side: Shorter-side length after resizing, as in :func:`iter_frames`.
        max_frames: Stop after this many kept frames in all; ``None`` decodes to the end.
        limits: Bounds for untrusted input.
        frame_folder_fps: The nominal frame rate of a frame folder (unused for a file).

    Returns:
        An iterator of :class:`DecodedVideo` pieces, in order; only the last can have
        ``truncated=True`` (it may then hold no frame: the damage came right after a full piece).

    Raises:
        As :func:`decode`; decoding errors come from the iterator.
    """
    for name, value in (("chunk_frames", chunk_frames), ("max_frames", max_frames)):
        if value is not None and value < 1:
            raise ConfigError(f"decode({name}=...) must be >= 1, got {value}")
    source = _Source.probe(path, frame_folder_fps, limits)
    return _pieces(
        source, _Plan.make(source.info, fps, short_side), chunk_frames, max_frames, limits
    )


def probe_source(
    path: str | os.PathLike[str],
    limits: VideoLimits = VideoLimits(),
    frame_folder_fps: float = FRAME_FOLDER_FPS,
) -> VideoInfo:
    """Header metadata of a video file or a frame folder, checked against ``limits``; decodes
    nothing (:func:`~vidfer.io.video_probe.probe` for a file,
    :func:`~vidfer.io.frame_folder.probe_folder` for a folder).

    Args:
        path: Video file or frame folder.
        limits: Bounds for untrusted input.
        frame_folder_fps: The nominal frame rate of a frame folder (unused for a file).

    Raises:
        VideoError: as :func:`decode` raises it before decoding.
    """
    return _Source.probe(path, frame_folder_fps, limits).info


@dataclass(frozen=True)
class _Source:
    """A probed video file, or a frame folder and its images."""

    info: VideoInfo
    images: list[Path] | None = None  # a frame folder's images, in order; None for a file

    @classmethod
    def probe(
        cls, path: str | os.PathLike[str], frame_folder_fps: float, limits: VideoLimits
    ) -> _Source:
        if Path(path).is_dir():
            folder = probe_folder(path, frame_folder_fps, limits)
            return cls(folder.info, folder.images)
        return cls(probe(path, limits))

    def frames(self, plan: _Plan, limits: VideoLimits) -> Generator[tuple[int, Frame], None, None]:
        """The kept frames: ``(index in the source, uint8 (H, W, 3) RGB frame)``."""
        if self.images is None:
            return _iter_decoded(self.info, plan, limits)
        return _iter_images(self.info, self.images, plan, limits)


def _pieces(
    source: _Source,
    plan: _Plan,
    chunk_frames: int,
    max_frames: int | None,
    limits: VideoLimits,
) -> Generator[DecodedVideo, None, None]:
    frames: list[Frame] = []
    indices: list[int] = []
    kept = 0
    truncated = False

    def piece() -> DecodedVideo:
        stacked = (
            np.stack(frames)  # n x (H, W, 3) -> (n, H, W, 3)
            if frames
            else np.zeros((0, plan.height, plan.width, 3), np.uint8)
        )
        return DecodedVideo(stacked, np.asarray(indices, dtype=np.int64), plan.fps, info, truncated)

    info = source.info
    decoding = source.frames(plan, limits)
    try:
        for index, frame in decoding:
            indices.append(index)
            frames.append(frame)
            kept += 1
            if max_frames is not None and kept >= max_frames:
                break
            if len(frames) == chunk_frames:
                yield piece()
                frames, indices = [], []
    except TruncatedVideoError as exc:
        if not kept:
            raise
        truncated = True
        logger.warning("%s; keeping the %d frames decoded before the damage", exc, kept)
    finally:
        # Closes the container now rather than at garbage collection when we stopped early.
        decoding.close()
    if not kept:
        raise EmptyVideoError(info.path, "the video stream holds no decodable frame")
    if frames or truncated:
        yield piece()


@dataclass(frozen=True)
class _Plan:
    """What to keep from a stream: output size and frame-rate step, validated before decoding."""

    width: int
    height: int
    step: float  # source frames per kept frame, >= 1 (never upsample)
    fps: float  # effective frame rate of the kept frames

    @classmethod
    def make(cls, info: VideoInfo, fps: float | None, short_side: int | None) -> _Plan:
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ConfigError(f"fps must be a positive number or None, got {fps}")
        if short_side is not None and short_side < 1:
            raise ConfigError(f"short_side must be >= 1 or None, got {short_side}")
        width, height = info.width, info.height
        if short_side is not None:
            scale = short_side / min(width, height)
            if width <= height:
                width, height = short_side, max(1, round(height * scale))
            else:
                width, height = max(1, round(width * scale)), short_side
        if fps is None or fps >= info.fps:
            return cls(width, height, 1.0, info.fps)
        return cls(width, height, info.fps / fps, fps)

    def kept(self) -> Iterator[int]:
        """The source indices of the kept frames, in order, without end."""
        # Target k is shown at k / fps, i.e. at source position k * step; its nearest source
        # frame is floor(k * step + 0.5) (the epsilon absorbs float error in exact ties). The
        # targets strictly increase because step >= 1.
        return (math.floor(k * self.step + 0.5 + 1e-9) for k in itertools.count())

    def rgb(self, frame: av.VideoFrame) -> Frame:
        """A decoded frame as ``uint8 (height, width, 3)`` RGB."""
        # Converting and resizing in one swscale call; explicit width/height also keeps every
        # frame the same shape if the stream changes resolution midway.
        rgb = frame.to_ndarray(
            format="rgb24", width=self.width, height=self.height, interpolation=_INTERPOLATION
        )
        return cast(Frame, rgb)  # rgb24 is always uint8


def _iter_decoded(
    info: VideoInfo, plan: _Plan, limits: VideoLimits
) -> Generator[tuple[int, Frame], None, None]:
    """Decode the video file ``info.path``, yielding the kept frames."""
    wanted = plan.kept()
    next_index = next(wanted)
    src = Path(info.path)
    with open_input(src) as container:
        for index, frame in enumerate(_decoded_frames(container, src)):
            if index >= limits.max_frames:
                # The header understated the length; stop before memory grows unbounded.
                raise too_large(
                    src, "decoded frame count", f"> {limits.max_frames}", "max_frames", limits
                )
            if index != next_index:
                continue
            next_index = next(wanted)
            yield index, plan.rgb(frame)


def _iter_images(
    info: VideoInfo, images: list[Path], plan: _Plan, limits: VideoLimits
) -> Generator[tuple[int, Frame], None, None]:
    """Decode the kept images of a frame folder (the others are not read)."""
    folder = Path(info.path)
    for index in plan.kept():
        if index >= len(images):
            return
        yield index, plan.rgb(decode_image(folder, images[index], info, limits))


def _decoded_frames(container: InputContainer, src: Path) -> Generator[av.VideoFrame, None, None]:
    """Every decodable frame of the video stream in presentation order.

    Raises:
        TruncatedVideoError: After the last frame decoded, when the file ends inside the data
            of the next one (it was cut short).
        UndecodableVideoError: After the last frame decoded, when the data that follows is
            in the file but cannot be decoded (damaged).
        MemoryError: When the decoder runs out of memory.
    """
    stream = video_stream(container, src)
    # PyAV's default (slice threading) on purpose: frame threading reports a damaged packet
    # asynchronously and loses the frames still in flight, so how much of a cut-short file
    # survives would depend on the number of CPU cores.
    decoded = 0
    packet_end = 0  # file offset where the last demuxed packet's data ends
    try:
        # demux() ends with an empty packet per stream, which flushes the decoder.
        for packet in container.demux(stream):
            if packet.pos is not None and packet.pos >= 0:
                packet_end = packet.pos + packet.size
            for frame in stream.decode(packet):
                decoded += 1
                yield frame
        return
    except av.FFmpegError as exc:
        if isinstance(exc, MemoryError):
            raise
        error = exc
    # The decoder still holds frames waiting for B-frame reordering: drain them, so that a
    # cut-short file yields every frame before the damage.
    with contextlib.suppress(av.FFmpegError):
        for frame in stream.decode(None):
            decoded += 1
            yield frame
    reason = ffmpeg_reason(error)
    # A cut-short file hands the decoder a last packet that runs to the end of the file.
    if packet_end >= src.stat().st_size:
        raise TruncatedVideoError(
            src,
            f"decoding failed after {decoded} frames ({reason}): the file ends inside the "
            "video data, it was cut short; re-download or re-export it",
        ) from error
    raise UndecodableVideoError(
        src,
        f"decoding failed after {decoded} frames ({reason}): the video data is damaged; "
        "re-encode or re-download it",
    ) from error
