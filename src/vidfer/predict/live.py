"""``vidfer live SOURCE``: predictions over the most recent frames of a live source.

The source is a camera (an index such as ``0``, or a device path such as ``/dev/video0``), a
network stream URL or a video file that PyAV opens (a file is read as fast as it decodes, or at
its own frame rate with ``realtime``), or raw ``rgb24`` frames of a known size on a pipe (``-``:
standard input, as ``ffmpeg -f rawvideo -pix_fmt rgb24 -`` writes them).

A reader thread (:mod:`vidfer.predict.live_sources`) keeps only the newest frames, one window of
them; the session takes the waiting frames and scores them with its model
(:mod:`vidfer.predict.live_models`: the main face found as ``vidfer predict`` finds it, the
default FER model per frame or a trained clip run over its clip window).

Each result carries the delay between the frame's arrival and its prediction; the summary holds
the frames read, scored and dropped and the median and 95th percentile of the delays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vidfer.errors import ConfigError
from vidfer.predict.live_models import live_model
from vidfer.predict.live_sources import (
    Frame,
    Reader,
    has_display,
    open_container,
    parse_pipe_format,
)
from vidfer.predict.video import make_predictor
from vidfer.viz.overlay import draw_box, draw_classes


@dataclass(frozen=True)
class LiveOptions:
    """How a live source is read and scored.

    Attributes:
        realtime: Play a file at its own frame rate (a camera or stream paces itself).
        pipe_format: ``WxH`` of the rgb24 frames on the pipe (source ``-``).
        preview: Show a preview window; None: when a display exists. Never without one.
        threads: Torch threads for scoring (set process-wide); None leaves torch's setting.
        device: Where the face detector and the model run, as in
            :func:`vidfer.predict.predict_video`; None: as the run's config says.
    """

    realtime: bool = False
    pipe_format: str | None = None
    preview: bool | None = None
    threads: int | None = 1
    device: str | None = None


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


def _show(frame: Frame, result: LiveResult, classes: list[str]) -> bool:
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
        self, source: str | int, run_folder: str | Path | None, options: LiveOptions
    ) -> None:
        self.source = str(source)
        pipe_size = None
        if self.source == "-":
            if options.pipe_format is None:
                raise ConfigError("SOURCE '-' reads raw rgb24 frames: give --pipe-format WxH")
            pipe_size = parse_pipe_format(options.pipe_format)
        container = None if pipe_size else open_container(self.source)  # fails before loading
        if options.threads is not None:  # one scoring thread leaves a core to the reader (and
            torch.set_num_threads(options.threads)  # is faster than two on a busy machine)
        try:
            self.model = live_model(make_predictor(run_folder, device=options.device), self.source)
        except BaseException:
            if container is not None:
                container.close()
            raise
        self.reader = Reader(self.source, container, self.model.window, options.realtime, pipe_size)
        preview = options.preview
        self.preview = has_display() if preview is None else preview and has_display()
        self.summary = LiveSummary(self.source, window=self.model.window)
        self._stop = threading.Event()
        self._delays: list[float] = []

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
    source: str | int, run_folder: str | Path | None = None, options: LiveOptions | None = None
) -> LiveSession:
    """Open a live source for prediction; iterate the session for :class:`LiveResult` s.

    Args:
        source: Camera index or device path, stream URL, video file, or ``-`` (raw frames on
            standard input).
        run_folder: A trained clip run; None: the default FER model.
        options: How to read and score it; None: the defaults of :class:`LiveOptions`.

    Raises:
        ConfigError: for a bad option, a run that is not a clip run.
        VideoError: if the source cannot be opened.
        CheckpointError: if ``run_folder`` is not a trained run.
    """
    return LiveSession(source, run_folder, options or LiveOptions())
