"""``vidfer live SOURCE``: predictions over the most recent frames of a live source.

The source is a camera (an index such as ``0``, or a device path such as ``/dev/video0``), a
network stream URL or a video file that PyAV opens (a file is read as fast as it decodes, or at
its own frame rate with ``realtime``), or raw ``rgb24`` frames of a known size on a pipe (``-``:
standard input, as ``ffmpeg -f rawvideo -pix_fmt rgb24 -`` writes them).

A reader thread decodes the source and keeps only the newest frames, one window of them, in a
bounded deque; a frame pushed out before the scorer took it is *dropped* (and counted), so the
scorer never lags more than one window behind the source. The scorer takes the waiting frames,
finds the main face (the same detector, tracker and alignment as ``vidfer predict``) and scores:

- the default FER model (no run): each frame's face, its probabilities smoothed over the last
  ``FER_SMOOTHING`` scored frames; one result per frame read;
- a trained clip run (3D model): the last ``eval.clip_len`` preprocessed frames, scored by the
  run's own scorer; one result per scoring step, for its newest frame.

Each result carries the delay between the frame's arrival and its prediction; the summary holds
the frames read, scored and dropped and the median and 95th percentile of the delays.
"""

from __future__ import annotations

import abc
import collections
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import av
import cv2
import numpy as np
import torch

from vidfer.config import PrepareConfig
from vidfer.data.preprocess import finish_frames
from vidfer.errors import ConfigError, VideoError
from vidfer.faces.pipeline import crop_faces, get_detector, track_faces
from vidfer.faces.tracks import MISSING
from vidfer.faces.types import FrameFaces
from vidfer.predict.video import (
    FER_SMOOTHING,
    FerPredictor,
    RunPredictor,
    make_predictor,
)
from vidfer.viz.overlay import draw_box, draw_classes

_WAIT_S = 0.05  # the scorer's longest wait for a frame before it checks for a stop


@dataclass(frozen=True)
class _Frame:
    index: int  # frames read before it
    time_s: float  # stream time (the source's timestamp, or seconds since the start)
    arrival: float  # time.monotonic() when the reader got it
    rgb: np.ndarray  # (H, W, 3) uint8


@dataclass(frozen=True)
class LiveResult:
    """The prediction for one frame.

    Attributes:
        time_s: The frame's stream time in seconds.
        frame: Its index among the frames read.
        box: The tracked face box ``[x1, y1, x2, y2]``, or None without a face.
        probabilities: Class name -> probability, empty without a face.
        label: The most probable class, or None.
        delay_ms: Milliseconds from the frame's arrival to this prediction.
    """

    time_s: float
    frame: int
    box: list[float] | None
    probabilities: dict[str, float]
    label: str | None
    delay_ms: float

    def to_json(self) -> dict[str, Any]:
        """The JSON line's fields."""
        return asdict(self)


@dataclass
class LiveSummary:
    """What a live session did, written when it stops.

    Attributes:
        source: The source as given.
        status: ``ok`` (end of stream or stopped) or ``error`` (the stream broke: ``reason``).
        frames_read: Frames the reader decoded.
        frames_scored: Frames the scorer took.
        frames_dropped: Frames pushed out of the window before the scorer took them.
        delay_ms_median: Median delay from a frame's arrival to its prediction.
        delay_ms_p95: Its 95th percentile.
        window: Frames in the window (the reader's deque and the model's context).
        reason: Why the stream ended early, or empty.
    """

    source: str
    status: str = "ok"
    frames_read: int = 0
    frames_scored: int = 0
    frames_dropped: int = 0
    delay_ms_median: float | None = None
    delay_ms_p95: float | None = None
    window: int = 0
    reason: str = ""
    summary: bool = field(default=True, init=False)  # marks the summary line among results

    def to_json(self) -> dict[str, Any]:
        """The summary line's fields."""
        return asdict(self)


def parse_pipe_format(text: str) -> tuple[int, int]:
    """``WxH`` -> ``(width, height)``.

    Raises:
        ConfigError: if ``text`` is not two positive integers joined by ``x``.
    """
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(f"--pipe-format {text!r}: give the frame size as WxH, e.g. 640x480")
    return int(parts[0]), int(parts[1])


def _open_container(source: str) -> Any:
    """The PyAV container of a camera index or device, a URL or a file.

    Raises:
        VideoError: if PyAV cannot open it.
    """
    options: dict[str, Any] = {}
    target = source
    if source.isdigit():  # a camera index
        if sys.platform == "darwin":
            options["format"] = "avfoundation"
        else:
            target, options["format"] = f"/dev/video{source}", "v4l2"
    elif source.startswith("/dev/video"):
        options["format"] = "v4l2"
    try:
        container = av.open(target, **options)
    except (av.FFmpegError, OSError) as error:
        raise VideoError(Path(source), f"cannot open it ({error}); check the source") from error
    if not container.streams.video:
        container.close()
        raise VideoError(Path(source), "has no video stream; check the source")
    return container


class _Reader(threading.Thread):
    """Decodes the source into a deque of the newest ``window`` frames."""

    def __init__(
        self,
        source: str,
        container: Any,
        window: int,
        realtime: bool,
        pipe_size: tuple[int, int] | None,
    ) -> None:
        super().__init__(name="vidfer-live-reader", daemon=True)
        self.source, self.container = source, container  # no container: the pipe
        self.realtime, self.pipe_size = realtime, pipe_size
        self.frames: collections.deque[_Frame] = collections.deque(maxlen=window)
        self.ready = threading.Condition()
        self.read = self.dropped = 0
        self.done = False
        self.error = ""
        self.stopping = threading.Event()

    def _push(self, time_s: float, rgb: np.ndarray) -> None:
        with self.ready:
            if len(self.frames) == self.frames.maxlen:
                self.dropped += 1  # the oldest waiting frame falls out unscored
            self.frames.append(_Frame(self.read, time_s, time.monotonic(), rgb))
            self.read += 1
            self.ready.notify()

    def _pipe(self, stream: IO[bytes]) -> None:
        assert self.pipe_size is not None
        width, height = self.pipe_size
        size = width * height * 3
        start = time.monotonic()
        while not self.stopping.is_set():
            data = stream.read(size)
            if len(data) < size:
                if data:
                    self.error = f"-: the pipe ended inside a frame ({len(data)} of {size} bytes)"
                return
            rgb = np.frombuffer(data, np.uint8).reshape(height, width, 3)  # rgb24 rows
            self._push(time.monotonic() - start, rgb)

    def _decode(self) -> None:
        assert self.container is not None
        start = None
        for frame in self.container.decode(video=0):
            if self.stopping.is_set():
                return
            time_s = float(frame.time) if frame.time is not None else float(self.read)
            if self.realtime:  # play at the stream's own rate
                if start is None:
                    start = time.monotonic() - time_s
                wait = start + time_s - time.monotonic()
                if wait > 0 and self.stopping.wait(wait):
                    return
            self._push(time_s, frame.to_ndarray(format="rgb24"))

    def run(self) -> None:
        try:
            if self.container is None:
                self._pipe(sys.stdin.buffer)
            else:
                self._decode()
        except Exception as error:  # reported in the summary, not lost with the thread
            self.error = (
                f"{self.source}: the stream broke after {self.read} frames "
                f"({type(error).__name__}: {error})"
            )
        finally:
            if self.container is not None:
                self.container.close()
            with self.ready:
                self.done = True
                self.ready.notify()

    def take(self) -> list[_Frame] | None:
        """The waiting frames (maybe none after a short wait); None once the stream ended."""
        with self.ready:
            if not self.frames and not self.done:
                self.ready.wait(_WAIT_S)
            if not self.frames and self.done:
                return None
            taken = list(self.frames)
            self.frames.clear()
            return taken


class _Model(abc.ABC):
    """A predictor's model on a live window of frames."""

    window: int
    classes: list[str]

    def __init__(self, prep: PrepareConfig) -> None:
        self.prep = prep
        self.faces = prep.face_config()
        self.detections: collections.deque[FrameFaces] = collections.deque(maxlen=self.window)
        if self.faces is not None:  # read the weights and run once before the first frame
            detector = get_detector(
                self.faces.detector, self.faces.min_face_size, self.faces.batch_size
            )
            detector.detect(np.zeros((1, 120, 160, 3), np.uint8))

    def _faces(self, rgb: np.ndarray) -> tuple[np.ndarray, list[list[float] | None]]:
        """Preprocessed frames of ``rgb`` ``(n, H, W, 3)`` with the tracked face (all frames
        without a face pipeline), and each frame's box (None without a face): ``(m, S, S, 3)``
        and ``n`` boxes."""
        if self.faces is None:
            height, width = rgb.shape[1:3]
            scale = self.prep.size / min(height, width)
            size = (round(width * scale), round(height * scale))
            resized = np.stack(
                [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in rgb]
            )
            return finish_frames(resized, self.prep), [None] * len(rgb)
        detector = get_detector(
            self.faces.detector, self.faces.min_face_size, self.faces.batch_size
        )
        self.detections.extend(detector.detect(rgb))
        track, records = track_faces(list(self.detections), self.faces)  # the recent window
        positions = np.arange(len(track) - len(rgb), len(track))  # (n,) the new frames
        has_face = np.array([track.status[p] != MISSING for p in positions])
        boxes = [records[p]["box"] if has_face[i] else None for i, p in enumerate(positions)]
        if not has_face.any():
            return np.zeros((0, self.faces.size, self.faces.size, 3), np.uint8), boxes
        crops, _ = crop_faces(rgb[has_face], positions[has_face], track, self.faces)
        return finish_frames(crops, self.prep), boxes

    @abc.abstractmethod
    def score(self, rgb: np.ndarray) -> list[tuple[int, list[float] | None, np.ndarray | None]]:
        """``(position among the new frames, box, probabilities (K,) or None)`` per result."""


class _FerModel(_Model):
    def __init__(self, predictor: FerPredictor) -> None:
        self.window, self.classes, self.predictor = FER_SMOOTHING, predictor.classes, predictor
        super().__init__(predictor.prep)
        self.recent: collections.deque[np.ndarray] = collections.deque(maxlen=FER_SMOOTHING)
        predictor.probabilities(np.zeros((1, 64, 64), np.uint8))  # warm up before the first frame

    def score(self, rgb: np.ndarray) -> list[tuple[int, list[float] | None, np.ndarray | None]]:
        faces, boxes = self._faces(rgb)
        probs = iter(self.predictor.probabilities(faces[..., 0]) if len(faces) else [])
        results: list[tuple[int, list[float] | None, np.ndarray | None]] = []
        for i, box in enumerate(boxes):
            if box is None:
                results.append((i, None, None))
                continue
            self.recent.append(next(probs))
            results.append((i, box, np.mean(self.recent, axis=0)))  # smoothed over the window
        return results


class _RunModel(_Model):
    def __init__(self, predictor: RunPredictor, source: str) -> None:
        if predictor.config.kind != "clip":
            raise ConfigError(
                f"{predictor.run.folder}: vidfer live takes clip runs (3D models) or no --run"
            )
        self.window, self.classes = predictor.settings.clip_len, predictor.classes
        super().__init__(predictor.prep)
        self.scorer = predictor.scorer(Path(source))
        self.clip: collections.deque[np.ndarray] = collections.deque(maxlen=self.window)

    def score(self, rgb: np.ndarray) -> list[tuple[int, list[float] | None, np.ndarray | None]]:
        frames, boxes = self._faces(rgb)
        self.clip.extend(frames)
        if len(self.clip) < self.window or not len(frames):
            return []
        scored = self.scorer(iter([np.stack(self.clip)]))  # one piece (L, S, S, 3)
        return [(len(rgb) - 1, boxes[-1], scored.video)]


def has_display() -> bool:
    """Whether a preview window can be shown: OpenCV built with a GUI, and a display."""
    gui = [line for line in cv2.getBuildInformation().splitlines() if "GUI:" in line]
    if not gui or gui[0].split(":", 1)[1].strip().upper() == "NONE":
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _show(frame: _Frame, result: LiveResult, classes: list[str]) -> bool:
    """Draw the result on the frame in the preview window (as ``--annotate`` draws it); False
    when the user pressed q."""
    image = frame.rgb.copy()
    if result.box is not None:
        draw_box(image, result.box)
    probs = [result.probabilities.get(name, np.nan) for name in classes]
    draw_classes(image, classes, np.array(probs), top=3)
    cv2.imshow("vidfer live", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return cv2.waitKey(1) & 0xFF != ord("q")


class LiveSession:
    """A live source scored as it comes: iterate for the results; :attr:`summary` after.

    Iteration ends at the end of the stream, after :meth:`stop` (callable from a signal handler
    or another thread), or on Ctrl-C (KeyboardInterrupt inside the session ends it cleanly).
    """

    def __init__(
        self,
        source: str | int,
        run_folder: str | Path | None = None,
        *,
        realtime: bool = False,
        pipe_format: str | None = None,
        preview: bool | None = None,
        threads: int | None = 1,
    ) -> None:
        self.source = str(source)
        pipe_size = None
        if self.source == "-":
            if pipe_format is None:
                raise ConfigError("SOURCE '-' reads raw rgb24 frames: give --pipe-format WxH")
            pipe_size = parse_pipe_format(pipe_format)
        container = None if pipe_size else _open_container(self.source)  # fails before loading
        if threads is not None:  # one scoring thread leaves a core to the reader (and is faster
            torch.set_num_threads(threads)  # than two on a busy machine: benchmarks/README.md)
        try:
            self.model = self._model(run_folder)
        except BaseException:
            if container is not None:
                container.close()
            raise
        self.reader = _Reader(self.source, container, self.model.window, realtime, pipe_size)
        self.preview = has_display() if preview is None else preview and has_display()
        self.summary = LiveSummary(self.source, window=self.model.window)
        self._stop = threading.Event()
        self._delays: list[float] = []

    def _model(self, run_folder: str | Path | None) -> _Model:
        predictor = make_predictor(run_folder)
        if isinstance(predictor, FerPredictor):
            return _FerModel(predictor)
        assert isinstance(predictor, RunPredictor)
        return _RunModel(predictor, self.source)

    def stop(self) -> None:
        """Ask the session to stop after the current step."""
        self._stop.set()

    def _finish(self) -> None:
        self.reader.stopping.set()
        self.reader.join(timeout=1.0)
        summary = self.summary
        summary.frames_read, summary.frames_dropped = self.reader.read, self.reader.dropped
        if self.reader.error:
            summary.status, summary.reason = "error", self.reader.error
        if self._delays:
            summary.delay_ms_median = round(float(np.median(self._delays)), 1)
            summary.delay_ms_p95 = round(float(np.percentile(self._delays, 95)), 1)
        if self.preview:
            cv2.destroyAllWindows()

    @torch.no_grad()  # torch's decorator suspends no_grad at each yield
    def __iter__(self) -> Iterator[LiveResult]:
        classes = self.model.classes
        self.reader.start()
        try:
            while not self._stop.is_set():
                frames = self.reader.take()
                if frames is None:
                    break
                if not frames:
                    continue
                self.summary.frames_scored += len(frames)
                rgb = np.stack([frame.rgb for frame in frames])  # (n, H, W, 3)
                for i, box, probs in self.model.score(rgb):
                    frame = frames[i]
                    delay = 1000 * (time.monotonic() - frame.arrival)
                    self._delays.append(delay)
                    probabilities = (
                        {}
                        if probs is None
                        else {c: round(float(p), 6) for c, p in zip(classes, probs, strict=True)}
                    )
                    label = None if probs is None else classes[int(np.argmax(probs))]
                    result = LiveResult(
                        round(frame.time_s, 4),
                        frame.index,
                        box,
                        probabilities,
                        label,
                        round(delay, 1),
                    )
                    yield result
                    if self.preview and not _show(frame, result, classes):
                        self._stop.set()
        except KeyboardInterrupt:
            pass  # Ctrl-C: a clean stop
        finally:
            self._finish()


def run_live(
    source: str | int,
    run_folder: str | Path | None = None,
    *,
    realtime: bool = False,
    pipe_format: str | None = None,
    preview: bool | None = None,
    threads: int | None = 1,
) -> LiveSession:
    """Open a live source for prediction; iterate the session for :class:`LiveResult` s.

    Args:
        source: Camera index or device path, stream URL, video file, or ``-`` (raw frames on
            standard input).
        run_folder: A trained clip run; None: the default FER model.
        realtime: Play a file at its own frame rate (a camera or stream paces itself).
        pipe_format: ``WxH`` of the rgb24 frames on the pipe (``source`` ``-``).
        preview: Show a preview window; None: when a display exists. Never without one.
        threads: Torch threads for scoring (set process-wide); None leaves torch's setting.

    Raises:
        ConfigError: for a bad option, a run that is not a clip run.
        VideoError: if the source cannot be opened.
        CheckpointError: if ``run_folder`` is not a trained run.
    """
    return LiveSession(
        source,
        run_folder,
        realtime=realtime,
        pipe_format=pipe_format,
        preview=preview,
        threads=threads,
    )
