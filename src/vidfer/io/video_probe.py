"""Probe video files with PyAV: header metadata checked against limits on untrusted input.

:func:`probe` reads only the container header and checks it against :class:`VideoLimits` before a
single frame is decoded, so a hostile or absurd file is rejected cheaply. The helpers below
(opening, finding the video stream, mapping FFmpeg's errors to :class:`vidfer.errors.VideoError`
subclasses with a fix) are shared with the decoder, :mod:`vidfer.io.video`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
from av.container import InputContainer
from av.stream import Disposition
from av.video.stream import VideoStream

from vidfer.errors import (
    CorruptVideoError,
    EmptyVideoError,
    MissingVideoError,
    NoVideoStreamError,
    VideoError,
    VideoTooLargeError,
)

_GIB = 1 << 30


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
    size_bytes = check_file(src, limits)
    with open_input(src) as container:
        return read_info(container, src, size_bytes, limits)


def check_file(src: Path, limits: VideoLimits) -> int:
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
        raise too_large(src, "file size (bytes)", stat.st_size, "max_file_bytes", limits)
    return stat.st_size


@contextlib.contextmanager
def open_input(src: Path) -> Iterator[InputContainer]:
    """Open ``src`` for reading, mapping FFmpeg's open errors to :class:`VideoError`."""
    try:
        container = av.open(str(src), mode="r")
    except PermissionError as exc:
        raise VideoError(src, "permission denied; make the file readable") from exc
    except av.FFmpegError as exc:
        raise CorruptVideoError(
            src,
            f"not a readable media file ({ffmpeg_reason(exc)}); "
            "check that it is a complete video file",
        ) from exc
    with container:
        yield container


def video_stream(container: InputContainer, src: Path) -> VideoStream:
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


def read_info(
    container: InputContainer, src: Path, size_bytes: int, limits: VideoLimits
) -> VideoInfo:
    stream = video_stream(container, src)
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
            raise too_large(src, what, value, option, limits)
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


def too_large(
    src: Path, what: str, value: object, option: str, limits: VideoLimits
) -> VideoTooLargeError:
    limit = getattr(limits, option)
    return VideoTooLargeError(
        src,
        f"{what} {value} exceeds limits.{option}={limit}; "
        f"raise VideoLimits.{option} to accept this file",
    )


def ffmpeg_reason(exc: av.FFmpegError) -> str:
    return exc.strerror or str(exc)
