"""Folders of frame images read as videos: listing, header checks and decoding of one image.

Many video datasets are distributed as one folder of images per clip (DFEW, FERV39k, MAFW, CK+,
Oulu-CASIA, UNBC-McMaster). A *frame folder* is such a folder: its ``.png``, ``.jpg``/``.jpeg``
and ``.bmp`` files (hidden files and sub-folders ignored) are the frames, in natural order of
their names (``frame2`` before ``frame10``), shown at a nominal frame rate that the folder does
not state (``data.frame_folder_fps``, default :data:`FRAME_FOLDER_FPS`).

:func:`probe_folder` checks a folder against :class:`~vidfer.io.video_probe.VideoLimits` before
any image is decoded, as :func:`~vidfer.io.video_probe.probe` does for a file: the images' total
size against ``max_file_bytes``, their count against ``max_frames``, the count over the frame
rate against ``max_duration_s``, the first image's size (read from its header) against
``max_width``/``max_height``. :func:`decode_image` decodes one image with FFmpeg's own image
decoders (PyAV), so that a frame folder and the same frames in a lossless video go through the
same pixel conversion (:mod:`vidfer.io.video`); every image's header is checked before it is
decoded, and an image that does not decode, or whose size differs from the first one's, is an
error naming it.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import av
from av.video.codeccontext import VideoCodecContext

from vidfer.errors import EmptyVideoError, MissingVideoError, UndecodableVideoError, VideoError
from vidfer.io.video_probe import VideoInfo, VideoLimits, ffmpeg_reason, too_large

FRAME_FOLDER_FPS = 25.0
"""The default nominal frame rate of a frame folder (``data.frame_folder_fps``): Oulu-CASIA's,
and the rate vidfer has always given UNBC-McMaster's frames; CK+ was filmed at 30."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
"""File name endings (any case) of the images of a frame folder."""

# FFmpeg decoder of each image format, told apart by the file's first bytes (not its suffix).
_PNG, _JPEG, _BMP = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM"
_DECODERS = {_PNG: "png", _JPEG: "mjpeg", _BMP: "bmp"}
# JPEG start-of-frame markers (C0-CF but DHT C4, JPG C8, DAC CC) hold the height and width.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_DIGITS = re.compile(r"([0-9]+)")


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key of a file name in natural order: runs of digits compare as numbers.

    ``frame2.png`` sorts before ``frame10.png``; names equal as numbers (``f01``, ``f1``) fall
    back to plain text order.
    """
    # re.split with a group alternates text and digit runs, text first: same types line up.
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def list_images(folder: Path) -> list[Path]:
    """The frame images of ``folder`` in natural order (hidden files and sub-folders left out).

    Raises:
        OSError: if the folder cannot be listed.
    """
    with os.scandir(folder) as entries:
        names = [
            entry.name
            for entry in entries
            if entry.name.lower().endswith(IMAGE_SUFFIXES)
            and not entry.name.startswith(".")
            and entry.is_file()
        ]
    return [folder / name for name in sorted(names, key=natural_key)]


@dataclass(frozen=True)
class FrameFolder:
    """A probed frame folder: its images and their header metadata as a video's.

    Attributes:
        images: The frame images, in order.
        info: The folder as a video (``path`` the folder, ``codec`` the first image's decoder,
            ``fps`` the nominal rate, ``size_bytes`` the images' total size).
    """

    images: list[Path]
    info: VideoInfo


def probe_folder(
    folder: str | os.PathLike[str], fps: float, limits: VideoLimits = VideoLimits()
) -> FrameFolder:
    """List a frame folder and check it against ``limits``; decodes nothing.

    Args:
        folder: The folder of frame images.
        fps: Its nominal frame rate.
        limits: Bounds for untrusted input.

    Returns:
        The images and the folder's metadata.

    Raises:
        MissingVideoError: the folder does not exist.
        VideoError: it cannot be listed, or an image links outside it.
        EmptyVideoError: it holds no image.
        UndecodableVideoError: the first image is not a PNG, JPEG or BMP with a readable size.
        VideoTooLargeError: the images exceed ``limits``.
    """
    src = Path(folder)
    try:
        images = list_images(src)
    except FileNotFoundError:
        raise MissingVideoError(src, "folder not found; check the path or the manifest") from None
    except OSError as exc:
        raise VideoError(src, f"cannot list the frame folder ({exc.strerror})") from exc
    if not images:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        raise EmptyVideoError(src, f"the frame folder holds no image ({suffixes}); remove the row")
    inside = src.resolve()
    size_bytes = 0
    for image in images:
        # A link out of the folder could read any file; the manifest refuses such paths too.
        if image.is_symlink() and not image.resolve().is_relative_to(inside):
            raise VideoError(src, f"{image.name} links outside the frame folder; copy the image")
        size_bytes += image.stat().st_size
    count = len(images)
    if size_bytes > limits.max_file_bytes:
        raise too_large(src, "total image size (bytes)", size_bytes, "max_file_bytes", limits)
    for what, value, option in (
        ("frame count", count, "max_frames"),
        ("duration (s)", round(count / fps, 3), "max_duration_s"),
    ):
        if value > getattr(limits, option):
            raise too_large(src, what, value, option, limits)
    data = _read(src, images[0])
    width, height = image_size(src, images[0].name, data, limits)
    info = VideoInfo(
        path=str(src),
        width=width,
        height=height,
        fps=fps,
        num_frames=count,
        duration_s=count / fps,
        codec=_decoder(src, images[0].name, data),
        has_audio=False,
        size_bytes=size_bytes,
    )
    return FrameFolder(images, info)


def decode_image(folder: Path, image: Path, info: VideoInfo, limits: VideoLimits) -> av.VideoFrame:
    """Decode one image of a frame folder, after checking its header.

    Args:
        folder: The frame folder (named in errors).
        image: The image file.
        info: The folder's metadata: every image must have its width and height.
        limits: Bounds for untrusted input.

    Raises:
        UndecodableVideoError: the image is not a PNG, JPEG or BMP, its size differs from the
            first image's, or its data is damaged (also a JPEG cut short).
        VideoTooLargeError: its header states a size beyond ``limits``.
    """
    data = _read(folder, image)
    size = image_size(folder, image.name, data, limits)
    if size != (info.width, info.height):
        raise UndecodableVideoError(
            folder,
            f"{image.name} is {size[0]}x{size[1]}, the first image {info.width}x{info.height}; "
            "the images of a frame folder must share one size",
        )
    context = av.CodecContext.create(_decoder(folder, image.name, data), "r")
    assert isinstance(context, VideoCodecContext)  # png, mjpeg and bmp are video decoders
    # "explode": a damaged or cut-short JPEG is an error, not a frame with grey blocks.
    context.options = {"err_detect": "explode"}
    try:
        frames = context.decode(av.Packet(data))
    except av.FFmpegError as exc:
        if isinstance(exc, MemoryError):
            raise
        raise _damaged(folder, image, ffmpeg_reason(exc)) from exc
    if not frames:
        raise _damaged(folder, image, "no picture decoded")
    return frames[0]


def image_size(folder: Path, name: str, data: bytes, limits: VideoLimits) -> tuple[int, int]:
    """``(width, height)`` read from a PNG, JPEG or BMP header, checked against ``limits``.

    Raises:
        UndecodableVideoError: the header is not one of these formats or states no size.
        VideoTooLargeError: the size exceeds ``limits``.
    """
    _decoder(folder, name, data)  # a file of another kind is named as such
    size = _header_size(data)
    if size is None or min(size) <= 0:
        raise _damaged(folder, Path(name), "its header states no image size")
    for what, value, option in (("width", size[0], "max_width"), ("height", size[1], "max_height")):
        if value > getattr(limits, option):
            raise too_large(folder / name, what, value, option, limits)
    return size


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header bytes of a PNG (IHDR), BMP (DIB header) or JPEG (SOF)."""
    try:
        if data.startswith(_PNG):
            width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
            return width, height
        if data.startswith(_BMP):
            if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
                width, height = struct.unpack("<HH", data[18:22])
            else:
                width, height = struct.unpack("<ii", data[18:26])
            return width, abs(height)  # a negative height is a top-down bitmap
        if data.startswith(_JPEG):
            return _jpeg_size(data)
    except struct.error:  # the file ends inside its header
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame segment of a JPEG."""
    position = 2  # after the SOI marker FF D8
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    return None


def _decoder(folder: Path, name: str, data: bytes) -> str:
    for magic, decoder in _DECODERS.items():
        if data.startswith(magic):
            return decoder
    raise _damaged(folder, Path(name), "not a PNG, JPEG or BMP image")


def _read(folder: Path, image: Path) -> bytes:
    try:
        return image.read_bytes()
    except OSError as exc:
        raise VideoError(folder, f"cannot read {image.name} ({exc.strerror})") from exc


def _damaged(folder: Path, image: Path, reason: str) -> UndecodableVideoError:
    return UndecodableVideoError(
        folder, f"{image.name} is not a readable image ({reason}); replace or remove it"
    )
