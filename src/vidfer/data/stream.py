"""One video's preprocessed frames, piece by piece: ``vidfer prepare`` and ``vidfer predict`` on
videos of any length.

The video may be a file or a frame folder (:mod:`vidfer.io.frame_folder`, at ``folder_fps``).

:func:`stream_video` applies a run's preprocessing (``data.prepare``) and holds one piece of at
most ``piece_frames`` frames at a time, so that memory does not grow with the video's length.
With the face pipeline on, the video is decoded twice: the first pass detects the faces of every
frame, piece by piece (:func:`vidfer.faces.pipeline.video_detector`: keyframe detection when
``faces.detect_every`` is above 1), keeping only boxes and landmarks; the main face is then
tracked over the whole video (the track needs every frame's detections, and they are small); the
second pass decodes again and crops the tracked face, piece by piece.

For ``vidfer predict`` the decoding runs in a sandboxed worker process
(:meth:`vidfer.io.sandbox.Sandbox.stream`, under ``data.limits.decode_timeout_s`` per piece and
``data.limits.decode_memory_mb``), as ``vidfer prepare``'s does: a video that crashes the
decoder, hangs or exhausts its memory raises a :class:`~vidfer.errors.QuarantinedVideoError`
naming the file and its status, and the calling process goes on. The worker sends one piece at a
time and decodes the next only while the caller uses the current one. ``vidfer prepare`` runs
in such a worker already (:mod:`vidfer.data.prepare`): it decodes in its own process
(``sandboxed=False``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidfer import faults
from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.config.faces import FaceConfig
from vidfer.data.preprocess import finish_frames, no_face_reason, quarantine_error, video_limits
from vidfer.data.store import SourceIdentity, StoreRecord
from vidfer.errors import DecoderError, VideoError
from vidfer.faces.pipeline import crop_faces, track_faces, track_records, video_detector
from vidfer.faces.tracks import MISSING, FaceTrack
from vidfer.faces.types import FrameFaces
from vidfer.io.frame_folder import FRAME_FOLDER_FPS
from vidfer.io.sandbox import Failure, Sandbox
from vidfer.io.sandbox_worker import heartbeat
from vidfer.io.video import DecodedVideo, decode_chunks
from vidfer.io.video_probe import VideoInfo, VideoLimits

# Decoded frames of a piece are kept within this fraction of ``data.limits.decode_memory_mb``
# (the rest: the face detector's batch, the crops, the decoder) and at most MAX_PIECE_FRAMES.
_PIECE_SHARE = 8
MAX_PIECE_FRAMES = 32
# Frame pixels the detection pass holds for one call of a keyframe detector (50 MB of RGB: 660
# frames of 176x144, 18 of 720p): a call of 32 frames detected only 4 keyframes at once.
_HELD_PIXELS = 1 << 24

Segment = tuple[float | None, float | None]


@dataclass(frozen=True)
class Detected:
    """A video's detection pass: the main face's track and each tracked frame's source index.

    Attributes:
        track: The main-face track, one entry per decoded frame.
        source: ``(T,)`` int64 source frame index of each.
    """

    track: FaceTrack
    source: np.ndarray


@dataclass
class VideoStream:
    """A video to be read piece by piece with a run's preprocessing.

    Attributes:
        path: The video file or frame folder.
        prep: The preprocessing settings.
        limits: Limits on untrusted input (the decoding worker's time and memory limits too).
        piece_frames: Decoded frames per piece.
        track: The main face's track (face pipeline on, after the detection pass), else None.
        faces: Per decoded frame face records, ``frame`` being the source frame index (face
            pipeline on), else None.
        status: ``ok``, or ``no_face`` when the face pipeline found too little face (then
            :meth:`pieces` yields nothing).
        reason: Why the status is not ``ok``.
        segment: Keep only the frames shown in ``[start, end)`` seconds (None: from the start,
            to the end).
        sandboxed: Decode in a sandboxed worker (else in this process, itself a worker).
        folder_fps: The frame rate of a frame folder (``data.frame_folder_fps``).
        decoded: Frames decoded (within the segment) by the last pass.
        options: The face pipeline's options (None: no faces).
        sandbox: A :func:`decoding_sandbox` reused from video to video; None starts one per
            decoding pass.
    """

    path: Path
    prep: PrepareConfig
    limits: LimitsConfig
    piece_frames: int
    segment: Segment = (None, None)
    sandboxed: bool = True
    folder_fps: float = FRAME_FOLDER_FPS
    track: FaceTrack | None = None
    faces: list[dict[str, Any]] | None = None
    status: str = "ok"
    reason: str = ""
    decoded: int = 0
    options: FaceConfig | None = None
    _fps: tuple[float, float] = (0.0, 0.0)  # (kept frames, source stream) frame rates
    _indices: list[np.ndarray] = field(default_factory=list)  # source indices of the pieces
    _shape: tuple[int, ...] = ()  # (S, S, 3) of a stored frame
    _truncated: bool = False
    sandbox: Sandbox[Any] | None = None  # a decoding sandbox shared by many videos

    def _decoded(self, short_side: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(source indices (n,), frames (n, H, W, 3))`` of every non-empty piece, within the
        segment.

        Raises:
            VideoError: if the video cannot be decoded, as :func:`decode_chunks` raises it
                (:class:`~vidfer.errors.DecoderError` for whatever else the decoder raises).
            QuarantinedVideoError: if the decoding worker crashed or overran its time or memory.
        """
        self.decoded = 0
        task = (
            str(self.path),
            self.piece_frames,
            self.prep,
            short_side,
            video_limits(self.limits),
            self.folder_fps,
        )
        pieces = self._sandboxed(task) if self.sandboxed else _decode_pieces(*task)
        for piece in pieces:
            self._fps = (float(piece.fps), float(piece.info.fps))
            self._truncated = piece.truncated
            indices, frames = _within(piece, self.segment)
            self.decoded += len(indices)
            heartbeat()  # in a preparation worker: this video's time limit bounds a piece
            if len(indices):
                yield indices, frames

    def _sandboxed(self, task: tuple[Any, ...]) -> Iterator[DecodedVideo]:
        """The pieces decoded in a sandboxed worker (see :meth:`_decoded`)."""
        limits = self.limits
        owned: contextlib.AbstractContextManager[Sandbox[Any]] = (
            decoding_sandbox(limits)
            if self.sandbox is None
            else contextlib.nullcontext(self.sandbox)
        )
        with owned as sandbox:
            for piece in sandbox.stream(task):
                if isinstance(piece, Failure):
                    what = f"{piece.status}: decoding it failed"
                    raise quarantine_error(self.path, piece, limits, what)
                yield piece

    def pieces(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(source frame indices (n,), uint8 frames (n, S, S, 3))`` of the kept frames, in
        order, preprocessed as in the prepared store; nothing when the status is not ``ok``.

        Raises:
            VideoError: if the video cannot be decoded (the message names the file).
        """
        if self.status != "ok":
            return
        self._indices = []
        faces = self.options
        position = 0  # the piece's first decoded frame, in the track's numbering
        for indices, frames in self._decoded(None if faces is not None else self.prep.size):
            if faces is not None and self.track is not None:
                positions = np.arange(position, position + len(frames))  # (n,)
                position += len(frames)
                has_face = np.array([self.track.status[p] != MISSING for p in positions])
                indices, positions = indices[has_face], positions[has_face]
                frames, _ = crop_faces(frames[has_face], positions, self.track, faces)
            if not len(indices):
                continue
            out = finish_frames(frames, self.prep)
            self._indices.append(indices)
            self._shape = out.shape[1:]
            yield indices, out

    def record(self) -> StoreRecord:
        """The store record of what :meth:`pieces` yielded (call it after them); ``too_short``
        when fewer than ``prep.min_frames`` frames were kept."""
        identity = SourceIdentity.of(self.path, self.segment, self.folder_fps)
        fps, source_fps = self._fps
        if self.status != "ok":
            return StoreRecord(
                source=identity,
                status=self.status,
                reason=self.reason,
                fps=fps,
                source_fps=source_fps,
                faces=self.faces,
            )
        indices = np.concatenate(self._indices) if self._indices else np.zeros(0, np.int64)
        if len(indices) < self.prep.min_frames:
            reason = (
                f"{len(indices)} frame(s), fewer than data.prepare.min_frames="
                f"{self.prep.min_frames}"
            )
            return StoreRecord(source=identity, status="too_short", reason=reason)
        return StoreRecord(
            source=identity,
            status="ok",
            fps=fps,
            source_fps=source_fps,
            frame_indices=[int(i) for i in indices],
            shape=[len(indices), *self._shape],
            truncated=self._truncated,
            faces=self.faces,
        )


def _within(piece: DecodedVideo, segment: Segment) -> tuple[np.ndarray, np.ndarray]:
    """The source indices ``(n,)`` and frames ``(n, H, W, 3)`` of a piece shown in ``segment``."""
    start, end = segment
    if start is None and end is None:
        return piece.frame_indices, piece.frames
    times = piece.frame_indices / piece.info.fps  # (n,) seconds of each kept frame
    keep = np.ones(len(times), dtype=bool)
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times < end
    return piece.frame_indices[keep], piece.frames[keep]


def _decode_pieces(
    path: str,
    piece_frames: int,
    prep: PrepareConfig,
    short_side: int | None,
    limits: VideoLimits,
    folder_fps: float,
) -> Iterator[DecodedVideo]:
    """Sandboxed worker entry point: the video's pieces of ``piece_frames`` decoded frames.

    Raises:
        VideoError: as :func:`decode_chunks`; :class:`~vidfer.errors.DecoderError` for whatever
            else a hostile file makes the decoder raise.
    """
    faults.inject("decode", Path(path).name)
    try:
        yield from decode_chunks(
            path,
            piece_frames,
            fps=prep.fps,
            short_side=short_side,
            max_frames=prep.max_frames,
            limits=limits,
            frame_folder_fps=folder_fps,
        )
    except (VideoError, MemoryError):
        raise  # MemoryError: the sandbox quarantines the video
    except Exception as error:
        reason = f"the decoder failed ({type(error).__name__}: {error}); re-encode the file"
        raise DecoderError(path, reason) from error


def _frames_within(pixels: int, limits: LimitsConfig) -> int | None:
    """RGB frames of ``pixels`` pixels that a share (1 / ``_PIECE_SHARE``) of
    ``limits.decode_memory_mb`` holds; None without a memory limit."""
    if limits.decode_memory_mb is None:
        return None
    return limits.decode_memory_mb * 1024 * 1024 // _PIECE_SHARE // max(pixels * 3, 1)


def piece_frames_for(info: VideoInfo, limits: LimitsConfig) -> int:
    """Decoded frames per piece for a video: full-resolution frames within a share of
    ``limits.decode_memory_mb``, between 1 and :data:`MAX_PIECE_FRAMES`."""
    within = _frames_within(info.width * info.height, limits)
    return MAX_PIECE_FRAMES if within is None else int(min(max(within, 1), MAX_PIECE_FRAMES))


def decoding_sandbox(limits: LimitsConfig) -> Sandbox[Any]:
    """A sandbox with one decoding worker under ``limits``, which streams may share
    (:func:`stream_video`'s ``sandbox``: no new worker per video)."""
    return Sandbox(
        _decode_pieces, 1, timeout_s=limits.decode_timeout_s, memory_mb=limits.decode_memory_mb
    )


def stream_video(
    path: Path,
    prep: PrepareConfig,
    limits: LimitsConfig,
    piece_frames: int,
    *,
    segment: Segment = (None, None),
    sandboxed: bool = True,
    folder_fps: float = FRAME_FOLDER_FPS,
    faces: FaceConfig | None = None,
    detected: Detected | None = None,
    sandbox: Sandbox[Any] | None = None,
) -> VideoStream:
    """Open a video (file or frame folder) for reading piece by piece; with faces on, run the
    detection pass now.

    Args:
        path: The video file or frame folder.
        prep: The preprocessing settings.
        limits: Limits on untrusted input.
        piece_frames: Decoded frames per piece.
        segment: Keep only the frames shown in ``[start, end)`` seconds.
        sandboxed: Decode in a sandboxed worker; False in a process that is one already.
        folder_fps: The frame rate of a frame folder (``data.frame_folder_fps``).
        faces: The face options to use instead of ``prep``'s (a resolved ``dataset_mean``
            template).
        detected: The video's detection pass, already done (it is not done again).
        sandbox: A :func:`decoding_sandbox` to decode in (``vidfer predict`` on many videos
            reuses one worker); None starts one per decoding pass.

    Raises:
        VideoError: if the video cannot be decoded (the message names the file); a
            :class:`~vidfer.errors.QuarantinedVideoError` if it crashed, stalled or exhausted
            its decoding worker.
    """
    stream = VideoStream(
        path, prep, limits, piece_frames, segment, sandboxed, folder_fps, sandbox=sandbox
    )
    stream.options = faces if faces is not None else prep.face_config()
    if stream.options is None:
        return stream
    found = detected if detected is not None else detect_faces(stream, stream.options)
    # Records name source frames, so that timelines can place every decoded frame.
    records = track_records(found.track)
    stream.faces = [{**item, "frame": int(found.source[item["frame"]])} for item in records]
    stream.track = found.track
    fraction = found.track.found_fraction
    if fraction < stream.options.min_face_fraction:
        stream.status = "no_face"
        stream.reason = no_face_reason(fraction, len(found.source), stream.options)
    return stream


def detection_frames(faces: FaceConfig, pixels: int, limits: LimitsConfig) -> int:
    """Frames per call of the detection pass on frames of ``pixels`` pixels:
    ``faces.batch_size``; with keyframe detection, up to a batch of keyframes
    (``batch_size * detect_every`` frames) where that many frames hold at most
    ``_HELD_PIXELS`` and fit the pieces' share of ``limits.decode_memory_mb`` (the frames
    waiting for a full call are held)."""
    if faces.detect_every <= 1:
        return faces.batch_size
    most = min(faces.batch_size * faces.detect_every, _HELD_PIXELS // max(pixels, 1))
    within = _frames_within(pixels, limits)
    return max(faces.batch_size, most if within is None else min(most, within))


def detect_faces(stream: VideoStream, faces: FaceConfig) -> Detected:
    """The detection pass: the main face's track through the video's pieces.

    The detector is :func:`~vidfer.faces.pipeline.video_detector`'s, one per video: with
    ``faces.detect_every`` above 1, full detection on keyframes and faces carried between, across
    pieces; with 1, every frame detected, crops bit-identical to the whole video's.

    Raises:
        VideoError: if the video cannot be decoded.
    """
    detector = video_detector(faces)
    detections: list[FrameFaces] = []
    sources: list[np.ndarray] = []
    # The detector is called on batches of exactly as many frames, whatever the piece size
    # (detection_frames): those an MTCNN would make of one array (its batch's candidates go
    # through R-Net and O-Net together, so results depend on the batch), and a keyframe
    # detector's chunks (it batches a chunk's keyframes), read in order, faces carried from one
    # call to the next.
    batch = 0
    waiting = np.zeros((0, 0, 0, 3), np.uint8)  # (n, H, W, 3) frames short of a full batch
    for indices, frames in stream._decoded(None):
        sources.append(indices)
        batch = batch or detection_frames(faces, frames.shape[1] * frames.shape[2], stream.limits)
        held = np.concatenate([waiting, frames]) if len(waiting) else frames  # (n, H, W, 3)
        full = len(held) - len(held) % batch
        for start in range(0, full, batch):
            detections.extend(detector.detect(held[start : start + batch]))
        waiting = held[full:]
    if len(waiting):
        detections.extend(detector.detect(waiting))
    source = np.concatenate(sources) if sources else np.zeros(0, np.int64)  # (T,) source indices
    track, _ = track_faces(detections, faces)
    return Detected(track, source)
