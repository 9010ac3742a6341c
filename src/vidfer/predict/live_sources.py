"""The sources of ``vidfer live``: a camera, a stream, a video file or raw frames on a pipe.

A :class:`Reader` thread decodes the source and keeps only the newest frames, one window of them,
in a bounded deque; a frame pushed out before the scorer took it is *dropped* (and counted), so
the scorer never lags more than one window behind the source.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av
import cv2
import numpy as np

from vidfer.errors import ConfigError, VideoError

_WAIT_S = 0.05  # the scorer's longest wait for a frame before it checks for a stop


@dataclass(frozen=True)
class Frame:
    """One frame read from the source."""

    index: int  # frames read before it
    time_s: float  # stream time (the source's timestamp, or seconds since the start)
    arrival: float  # time.monotonic() when the reader got it
    rgb: np.ndarray  # (H, W, 3) uint8


def parse_pipe_format(text: str) -> tuple[int, int]:
    """``WxH`` -> ``(width, height)``.

    Raises:
        ConfigError: if ``text`` is not two positive integers joined by ``x``.
    """
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(f"--pipe-format {text!r}: give the frame size as WxH, e.g. 640x480")
    return int(parts[0]), int(parts[1])


def open_container(source: str) -> Any:
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


class Reader(threading.Thread):
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
        self.frames: collections.deque[Frame] = collections.deque(maxlen=window)
        self.ready = threading.Condition()
        self.read = self.dropped = 0
        self.done = False
        self.error = ""
        self.stopping = threading.Event()

    def _push(self, time_s: float, rgb: np.ndarray) -> None:
        with self.ready:
            if len(self.frames) == self.frames.maxlen:
                self.dropped += 1  # the oldest waiting frame falls out unscored
            self.frames.append(Frame(self.read, time_s, time.monotonic(), rgb))
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

    def take(self) -> list[Frame] | None:
        """The waiting frames (maybe none after a short wait); None once the stream ended."""
        with self.ready:
            if not self.frames and not self.done:
                self.ready.wait(_WAIT_S)
            if not self.frames and self.done:
                return None
            taken = list(self.frames)
            self.frames.clear()
            return taken


def has_display() -> bool:
    """Whether a preview window can be shown: OpenCV built with a GUI, and a display."""
    gui = [line for line in cv2.getBuildInformation().splitlines() if "GUI:" in line]
    if not gui or gui[0].split(":", 1)[1].strip().upper() == "NONE":
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True
