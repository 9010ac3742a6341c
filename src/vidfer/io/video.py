"""Probe and decode video files with PyAV, with limits on untrusted input.

:func:`probe` reads only the container header and checks it against :class:`VideoLimits` before a
single frame is decoded, so a hostile or absurd file is rejected cheaply. :func:`iter_frames`
streams ``(original index, RGB frame)`` pairs for long videos; :func:`decode_chunks` groups the
same stream into pieces of bounded size, and :func:`decode` collects it into one array. All
optionally subsample to a target frame rate and resize so that the shorter side has a given length
(in swscale, during the pixel-format conversion).

Timing assumes a constant frame rate (the stream's average rate): frame ``i`` is taken to be shown
at ``i / fps``. Variable-frame-rate files are therefore treated as if their frames were evenly
spaced, which is what the clip samplers downstream assume as well.
"""

from __future__ import annotations

import contextlib
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
from av.stream import Disposition
from av.video.stream import VideoStream

from vidfer.errors import (
    ConfigError,
    CorruptVideoError,
    EmptyVideoError,
    MissingVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    UndecodableVideoError,
    VideoError,
    VideoTooLargeError,
)

logger = logging.getLogger(__name__)

_GIB = 1 << 30
# Area averaging avoids the aliasing that bilinear shows when shrinking by large factors.
_INTERPOLATION = "AREA"

Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class VideoLimits:
    """Upper bounds for untrusted input, checked from the header before any decoding.

    Attributes:
        max_file_bytes: Largest accepted file size in bytes.
        max_width: Largest accepted frame width in pixels.
        max_height: Largest accepted frame height in pixels.
        max_duration_s: Longest accepted duration in seconds.
        max_frames: Largest accepted number of frames (also enforced while decoding, in case the
            header understates it).
    """

    max_file_bytes: int = 4 * _GIB
    max_width: int = 8192
    max_height: int = 8192
    max_duration_s: float = 4 * 3600.0
    max_frames: int = 500_000


@dataclass(frozen=True)
class VideoInfo:
    """Header metadata of a video file.

    Attributes:
        path: The file, as given.
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Average frame rate of the video stream.
        num_frames: Frame count stated by the stream, else ``round(duration_s * fps)``; ``0`` when
            the container states neither.
        duration_s: Duration of the video stream (else of the container) in seconds; estimated
            from ``num_frames / fps`` when the container states neither.
        codec: Decoder name of the video stream (e.g. ``"h264"``).
        has_audio: Whether the container also holds an audio stream.
        size_bytes: File size in bytes.
    """

    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    codec: str
    has_audio: bool
    size_bytes: int


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


def probe(path: str | os.PathLike[str], limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """Read a video's header and check it against ``limits``; decodes nothing.

    Args:
        path: Video file.
        limits: Bounds for untrusted input.

    Returns:
        The header metadata.

    Raises:
        MissingVideoError: ``path`` does not exist.
        VideoError: ``path`` is not a regular file or cannot be read.
        EmptyVideoError: The file has zero bytes.
        CorruptVideoError: The file is not a media container FFmpeg can read.
        NoVideoStreamError: The container has no video stream (e.g. audio only).
        VideoTooLargeError: The file or its metadata exceed ``limits``.
    """
    src = Path(path)
    size_bytes = _check_file(src, limits)
    with _open_input(src) as container:
        return _read_info(container, src, size_bytes, limits)


def iter_frames(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    short_side: int | None = None,
    limits: VideoLimits = VideoLimits(),
) -> Iterator[tuple[int, Frame]]:
    """Stream the frames of a video without holding them all in memory.

    The file is probed (and checked against ``limits``) when this function is called, so header
    errors surface here; decoding starts at the first ``next()``.

    Args:
        path: Video file.
        fps: Target frame rate; for each time ``k / fps`` the nearest source frame is kept.
            ``None``, or a rate at or above the source rate, keeps every frame (never upsamples).
        short_side: Resize so that the shorter side has this many pixels, keeping the aspect
            ratio (up- or downscaling). ``None`` keeps the source size.
        limits: Bounds for untrusted input.

    Returns:
        An iterator of ``(index in the original stream, uint8 (H, W, 3) RGB frame)``.

    Raises:
        VideoError: As :func:`probe`, at call time.
        ConfigError: ``fps`` or ``short_side`` is not positive, at call time.
        CorruptVideoError: From the iterator, when decoding fails; frames already yielded are
            valid.
        VideoTooLargeError: From the iterator, when the stream holds more frames than
            ``limits.max_frames`` although its header said otherwise.
    """
    info = probe(path, limits)
    return _iter_decoded(info, _Plan.make(info, fps, short_side), limits)


def decode(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    short_side: int | None = None,
    max_frames: int | None = None,
    limits: VideoLimits = VideoLimits(),
) -> DecodedVideo:
    """Decode a whole video (or its first ``max_frames`` kept frames) into one array.

    A file cut short is not rejected when some frames decode: the frames before the cut are
    returned with ``truncated=True``.

    Args:
        path: Video file.
        fps: Target frame rate, as in :func:`iter_frames`.
        short_side: Shorter-side length after resizing, as in :func:`iter_frames`.
        max_frames: Stop after this many kept frames; ``None`` decodes to the end.
        limits: Bounds for untrusted input.

    Returns:
        The decoded frames, their original indices and the effective frame rate.

    Raises:
        VideoError: As :func:`probe`.
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
            path, whole, fps=fps, short_side=short_side, max_frames=max_frames, limits=limits
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
) -> Iterator[DecodedVideo]:
    """Decode a video as consecutive pieces of at most ``chunk_frames`` kept frames.

    Memory holds one piece at a time whatever the video's length (``vidfer predict`` on long
    videos). The pieces concatenated are exactly :func:`decode`'s frames. The file is probed
    (and checked against ``limits``) when this function is called.

    Args:
        path: Video file.
        chunk_frames: Kept frames per piece (the last piece may hold fewer).
        fps: Target frame rate, as in :func:`iter_frames`.
        short_side: Shorter-side length after resizing, as in :func:`iter_frames`.
        max_frames: Stop after this many kept frames in all; ``None`` decodes to the end.
        limits: Bounds for untrusted input.

    Returns:
        An iterator of :class:`DecodedVideo` pieces, in order; only the last can have
        ``truncated=True`` (it may then hold no frame: the damage came right after a full piece).

    Raises:
        As :func:`decode`; decoding errors come from the iterator.
    """
    for name, value in (("chunk_frames", chunk_frames), ("max_frames", max_frames)):
        if value is not None and value < 1:
            raise ConfigError(f"decode({name}=...) must be >= 1, got {value}")
    info = probe(path, limits)
    return _pieces(info, _Plan.make(info, fps, short_side), chunk_frames, max_frames, limits)


def _pieces(
    info: VideoInfo, plan: _Plan, chunk_frames: int, max_frames: int | None, limits: VideoLimits
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

    decoding = _iter_decoded(info, plan, limits)
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


def _iter_decoded(
    info: VideoInfo, plan: _Plan, limits: VideoLimits
) -> Generator[tuple[int, Frame], None, None]:
    """Decode ``info.path``, yielding the kept frames; the one decoding loop of this module."""
    # Target k is shown at k / fps, i.e. at source position k * step; its nearest source frame
    # is floor(k * step + 0.5) (the epsilon absorbs float error in exact ties). The targets
    # strictly increase because step >= 1, so one pass with a counter suffices.
    next_k = 0
    next_index = 0
    src = Path(info.path)
    with _open_input(src) as container:
        for index, frame in enumerate(_decoded_frames(container, src)):
            if index >= limits.max_frames:
                # The header understated the length; stop before memory grows unbounded.
                raise _too_large(
                    src, "decoded frame count", f"> {limits.max_frames}", "max_frames", limits
                )
            if index != next_index:
                continue
            next_k += 1
            next_index = math.floor(next_k * plan.step + 0.5 + 1e-9)
            # Converting and resizing in one swscale call; explicit width/height also keeps
            # every frame the same shape if the stream changes resolution midway.
            rgb = frame.to_ndarray(
                format="rgb24", width=plan.width, height=plan.height, interpolation=_INTERPOLATION
            )
            yield index, cast(Frame, rgb)  # rgb24 is always uint8


def _decoded_frames(container: InputContainer, src: Path) -> Generator[av.VideoFrame, None, None]:
    """Every decodable frame of the video stream in presentation order.

    Raises:
        TruncatedVideoError: After the last frame decoded, when the file ends inside the data
            of the next one (it was cut short).
        UndecodableVideoError: After the last frame decoded, when the data that follows is
            in the file but cannot be decoded (damaged).
        MemoryError: When the decoder runs out of memory.
    """
    stream = _video_stream(container, src)
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
    reason = _ffmpeg_reason(error)
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


def _check_file(src: Path, limits: VideoLimits) -> int:
    """Existence, type and size checks that need no demuxer; returns the size in bytes."""
    try:
        stat = src.stat()
    except FileNotFoundError:
        raise MissingVideoError(src, "file not found; check the path or the manifest") from None
    except OSError as exc:
        raise VideoError(src, f"cannot access the file ({exc.strerror})") from exc
    if not src.is_file():
        raise VideoError(src, "not a regular file; pass the path of a video file")
    if stat.st_size == 0:
        raise EmptyVideoError(src, "the file is empty (0 bytes); re-download or re-export it")
    if stat.st_size > limits.max_file_bytes:
        raise _too_large(src, "file size (bytes)", stat.st_size, "max_file_bytes", limits)
    return stat.st_size


@contextlib.contextmanager
def _open_input(src: Path) -> Iterator[InputContainer]:
    """Open ``src`` for reading, mapping FFmpeg's open errors to :class:`VideoError`."""
    try:
        container = av.open(str(src), mode="r")
    except PermissionError as exc:
        raise VideoError(src, "permission denied; make the file readable") from exc
    except av.FFmpegError as exc:
        raise CorruptVideoError(
            src,
            f"not a readable media file ({_ffmpeg_reason(exc)}); "
            "check that it is a complete video file",
        ) from exc
    with container:
        yield container


def _video_stream(container: InputContainer, src: Path) -> VideoStream:
    """The first real video stream; cover art in audio files is a one-picture "video" stream."""
    for stream in container.streams.video:
        if stream.disposition & Disposition.attached_pic:
            continue
        # A header cut short can list the stream without its codec parameters; PyAV then has
        # no decoder for it and crashes the process on the first packet.
        if stream.codec_context is None:
            raise CorruptVideoError(
                src, "the video stream has no codec parameters; the file is damaged"
            )
        return stream
    kinds: list[str] = sorted({s.type for s in container.streams})
    if not {"audio", "subtitle"} & set(kinds):
        # A media file without audio or video is a damaged header (a cut-short mp4 lists no
        # stream, or only a "data" stream), not a file that merely lacks pictures.
        raise CorruptVideoError(
            src,
            f"no audio or video stream ({', '.join(kinds) or 'none'} found); the file is "
            "damaged or not a media file",
        )
    raise NoVideoStreamError(
        src, f"no video stream ({', '.join(kinds)} streams only); pass a file with a video track"
    )


def _read_info(
    container: InputContainer, src: Path, size_bytes: int, limits: VideoLimits
) -> VideoInfo:
    stream = _video_stream(container, src)
    codec_context = stream.codec_context
    width, height = codec_context.width, codec_context.height
    if width <= 0 or height <= 0:
        raise CorruptVideoError(src, "the video stream states no frame size; re-encode the file")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise CorruptVideoError(src, "the video stream states no frame rate; re-encode the file")
    fps = float(rate)
    if stream.duration and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration:
        duration_s = container.duration / av.time_base
    else:
        duration_s = 0.0
    num_frames = stream.frames or round(duration_s * fps)
    if not duration_s:
        duration_s = num_frames / fps

    for what, value, option in (
        ("width", width, "max_width"),
        ("height", height, "max_height"),
        ("duration (s)", round(duration_s, 3), "max_duration_s"),
        ("frame count", num_frames, "max_frames"),
    ):
        if value > getattr(limits, option):
            raise _too_large(src, what, value, option, limits)
    return VideoInfo(
        path=str(src),
        width=width,
        height=height,
        fps=fps,
        num_frames=num_frames,
        duration_s=duration_s,
        codec=codec_context.name,
        has_audio=bool(container.streams.audio),
        size_bytes=size_bytes,
    )


def _too_large(
    src: Path, what: str, value: object, option: str, limits: VideoLimits
) -> VideoTooLargeError:
    limit = getattr(limits, option)
    return VideoTooLargeError(
        src,
        f"{what} {value} exceeds limits.{option}={limit}; "
        f"raise VideoLimits.{option} to accept this file",
    )


def _ffmpeg_reason(exc: av.FFmpegError) -> str:
    return exc.strerror or str(exc)
