"""One exception hierarchy for every error a user can cause.

Messages name the file, line or option at fault and say how to fix it. The CLI prints the message
on one line and exits non-zero; it never shows a traceback for a :class:`VidferError`.
"""

from __future__ import annotations


class VidferError(Exception):
    """Base class of every error vidfer raises on bad input or bad configuration."""


class ConfigError(VidferError):
    """A configuration file or option is invalid."""


class MissingExtraError(ConfigError):
    """A feature needs an optional extra that is not installed (the message gives the
    ``pip install 'vidfer[EXTRA]'`` line)."""


class ManifestError(VidferError):
    """A manifest CSV is invalid (the message names the line)."""


class AssetError(VidferError):
    """A pretrained asset is missing or does not match its checksum."""


class CheckpointError(VidferError):
    """A checkpoint or run directory is missing, incomplete or unsafe."""


class TrainingError(VidferError):
    """Training cannot go on: a loss that is not finite, a data-loader worker lost."""


class StorageError(VidferError):
    """An output could not be written (disk full, quota exceeded); the previous version is kept."""


class VideoError(VidferError):
    """A video file cannot be used. ``status`` is the short reason stored in ``rejects.jsonl``."""

    status = "rejected"

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type[VideoError], tuple[str, str]]:
        """Pickled as its path and reason (it is relayed from a sandboxed decoding worker)."""
        return type(self), (self.path, self.reason)


class MissingVideoError(VideoError):
    """The video path does not exist."""

    status = "missing"


class CorruptVideoError(VideoError):
    """The container or the stream cannot be decoded."""

    status = "corrupt"


class TruncatedVideoError(CorruptVideoError):
    """The file ends inside the video data: it was cut short (an interrupted copy or download)."""

    status = "truncated"


class UndecodableVideoError(CorruptVideoError):
    """The container is readable but the video data inside it is not (a damaged payload)."""

    status = "undecodable"


class EmptyVideoError(VideoError):
    """The file is empty or holds no decodable frame."""

    status = "empty"


class NoVideoStreamError(VideoError):
    """The container has no video stream (audio only, or not a media file)."""

    status = "no_video_stream"


class VideoTooLargeError(VideoError):
    """The probed metadata exceed the configured limits (size, resolution or duration)."""

    status = "too_large"


class VideoTooShortError(VideoError):
    """The video has fewer frames than the configured minimum."""

    status = "too_short"


class DecoderError(VideoError):
    """The decoder raised something other than a video error (a hostile or exotic file)."""

    status = "decoder_error"


class QuarantinedVideoError(VideoError):
    """Decoding the video killed, stalled or exhausted its sandboxed worker process
    (:mod:`vidfer.io.sandbox`); the calling process is unharmed."""


class CrashedVideoError(QuarantinedVideoError):
    """The decoding worker died (a segmentation fault in the decoder, the out-of-memory killer)."""

    status = "crashed"


class TimedOutVideoError(QuarantinedVideoError):
    """The decoding worker overran ``data.limits.decode_timeout_s`` and was killed."""

    status = "timeout"


class OutOfMemoryVideoError(QuarantinedVideoError):
    """The decoding worker needed more than ``data.limits.decode_memory_mb``."""

    status = "out_of_memory"
