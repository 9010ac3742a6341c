"""The annotated copy of a video: every source frame with the prediction drawn on it.

:func:`write_annotated` decodes the source's video stream, draws on each frame the tracked face
box, the top classes with their probabilities and the running timeline strip
(:mod:`vidfer.viz.overlay`), and encodes it with libx264 (yuv420p, CRF 18) into an mp4. Each
output frame keeps its source frame's timestamp in the source's time base, so the frame count
and timing are the source's; the first audio stream is copied through packet by packet (not
re-encoded) when the mp4 container takes its codec. It runs in a sandboxed worker
(``vidfer predict --annotate``): the source is untrusted input.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from vidfer.errors import CorruptVideoError
from vidfer.io.atomic import atomic_path
from vidfer.io.video_probe import open_input, video_stream
from vidfer.viz.overlay import draw_box, draw_classes, draw_strip, strip_height, timeline_strip

MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"})
"""Audio codecs copied into the mp4 as they are; another codec's audio is left out."""


@dataclass(frozen=True)
class Overlay:
    """What to draw: a prediction's timeline rows.

    Attributes:
        classes: Class names.
        frames: ``(N,)`` increasing source frame index of each row; a source frame without a
            row shows the row before it.
        boxes: ``(N, 4)`` face box ``x1, y1, x2, y2`` in source pixels, NaN without a face.
        probabilities: ``(N, K)`` class probabilities, NaN where the frame was not scored.
        top: Classes listed on the frame.
    """

    classes: list[str]
    frames: np.ndarray
    boxes: np.ndarray
    probabilities: np.ndarray
    top: int = 3


@dataclass(frozen=True)
class Annotated:
    """What :func:`write_annotated` wrote.

    Attributes:
        frames: Video frames written (every decoded source frame).
        audio: The copied audio codec, ``""`` when the source had no audio, or ``"dropped
            (<codec>)"`` when the mp4 container cannot hold it.
    """

    frames: int
    audio: str


def _even(size: int) -> int:
    return size + size % 2


def _draw(image: np.ndarray, overlay: Overlay, strip: np.ndarray, index: int) -> None:
    row = int(np.searchsorted(overlay.frames, index, side="right")) - 1
    if row < 0:
        return
    box = overlay.boxes[row]
    if not np.isnan(box).any():
        draw_box(image, box)
    draw_classes(image, overlay.classes, overlay.probabilities[row], overlay.top)
    draw_strip(image, strip, row / max(len(overlay.frames) - 1, 1))


def write_annotated(source: str, dest: str, overlay: Overlay) -> Annotated:
    """Write the annotated copy of ``source`` to ``dest`` (an mp4, atomically).

    Raises:
        VideoError: if the source cannot be read (a :class:`CorruptVideoError` when its data is
            damaged).
    """
    src = Path(source)
    try:
        with open_input(src) as container, atomic_path(dest) as tmp:
            return _copy(container, src, tmp, overlay)
    except av.FFmpegError as error:
        raise CorruptVideoError(
            src, f"re-reading it for the annotated copy failed ({error})"
        ) from error


def _copy(container: Any, src: Path, tmp: Path, overlay: Overlay) -> Annotated:
    vin = video_stream(container, src)
    ain = next(iter(container.streams.audio), None)
    width, height = vin.codec_context.width, vin.codec_context.height
    strip = timeline_strip(overlay.probabilities, width, strip_height(height))
    with av.open(str(tmp), "w", format="mp4") as out:
        vout = out.add_stream("libx264", rate=vin.average_rate or Fraction(25))
        vout.width, vout.height, vout.pix_fmt = _even(width), _even(height), "yuv420p"
        vout.time_base = vin.time_base
        vout.options = {"crf": "18"}
        audio = "" if ain is None else ain.codec_context.name
        aout = None
        if ain is not None and audio in MP4_AUDIO:
            aout = out.add_stream_from_template(ain)
        elif ain is not None:
            audio = f"dropped ({audio})"
        streams = [vin] if aout is None else [vin, ain]
        count, last_pts = 0, -1
        time_base = vin.time_base or Fraction(1, 25)
        step = max(1, round(1 / (float(vin.average_rate or 25) * float(time_base))))
        for packet in container.demux(streams):
            if packet.stream.index != vin.index:
                if packet.dts is not None and aout is not None:
                    packet.stream = aout
                    out.mux(packet)
                continue
            for frame in packet.decode():
                image = frame.to_ndarray(format="rgb24", width=width, height=height)
                _draw(image, overlay, strip, count)
                if image.shape[:2] != (vout.height, vout.width):  # odd size: repeat the edge
                    pad = ((0, vout.height - height), (0, vout.width - width), (0, 0))
                    image = np.pad(image, pad, mode="edge")
                drawn = av.VideoFrame.from_ndarray(image, format="rgb24")
                drawn.pts = frame.pts if frame.pts is not None else last_pts + step
                drawn.time_base = vin.time_base
                last_pts = drawn.pts
                out.mux(vout.encode(drawn))
                count += 1
        out.mux(vout.encode(None))
    return Annotated(frames=count, audio=audio)
