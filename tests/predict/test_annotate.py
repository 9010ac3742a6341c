"""``vidfer predict --annotate``: the annotated mp4, checked on its decoded pixels, frame count,
timestamps and audio."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from vidfer.assets import asset_path
from vidfer.config import LimitsConfig
from vidfer.models.mini_xception import FER2013_CLASSES
from vidfer.predict.annotate import ANNOTATED, annotate, read_overlay

from helpers import moving_square, write_video_with_tone


def _frames_and_pts(path: Path) -> tuple[list[np.ndarray], list[int], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, pts = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(int(frame.pts))
        return frames, pts, float(stream.duration * stream.time_base)


def _greenness(image: np.ndarray, box: np.ndarray) -> float:
    """Mean of G - (R + B) / 2 over the outline of ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (round(v) for v in box)
    outline = np.concatenate(
        [
            image[y1, x1 : x2 + 1],
            image[y2, x1 : x2 + 1],
            image[y1 : y2 + 1, x1],
            image[y1 : y2 + 1, x2],
        ]
    ).astype(float)
    return float((outline[:, 1] - (outline[:, 0] + outline[:, 2]) / 2).mean())


@pytest.mark.slow
def test_annotated_carphone_frames_timing_and_box(carphone_prediction, tmp_path):
    folder, _ = carphone_prediction
    out = tmp_path / "carphone"
    out.mkdir()
    shutil.copy(folder / "timeline.csv", out / "timeline.csv")
    source = asset_path("carphone")
    written = annotate(source, out, list(FER2013_CLASSES), LimitsConfig(), 256)
    assert written.frames == 120 and written.audio == ""
    drawn, drawn_pts, drawn_s = _frames_and_pts(out / ANNOTATED)
    original, original_pts, original_s = _frames_and_pts(source)
    assert len(drawn) == len(original) == 120
    assert drawn_pts == original_pts and drawn_s == pytest.approx(original_s, abs=1e-9)
    with av.open(str(out / ANNOTATED)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    overlay = read_overlay(out / "timeline.csv", list(FER2013_CLASSES))
    checked = 0
    for index in (0, 30, 60, 90, 119):
        box = overlay.boxes[index]
        if np.isnan(box).any():
            continue
        checked += 1
        # The outline of the timeline's box is green in the annotated frame, not in the source,
        # and not 6 pixels away from it.
        assert _greenness(drawn[index], box) > 120
        assert _greenness(original[index], box) < 40
        for dx, dy in ((6, 6), (-6, -6)):
            shifted = box + np.array([dx, dy, -dx, -dy])
            assert _greenness(drawn[index], shifted) < 60
    assert checked >= 4


def test_annotated_copies_audio_and_keeps_timing(tmp_path):
    video = write_video_with_tone(tmp_path / "tone.mp4", moving_square(1, 30, 48), 10.0, 440.0)
    out = tmp_path / "out"
    out.mkdir()
    classes = ["left", "right"]
    with (out / "timeline.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "time_s", "p_left", "p_right"])
        for frame in range(0, 30, 2):  # every other frame scored, as with data.prepare.fps
            writer.writerow([frame, frame / 10, 0.2, 0.8])
    written = annotate(video, out, classes, LimitsConfig(), 16)
    assert written.frames == 30 and written.audio == "aac"
    drawn, drawn_pts, _ = _frames_and_pts(out / ANNOTATED)
    _, source_pts, _ = _frames_and_pts(video)
    assert drawn_pts == source_pts

    def audio_packets(path: Path) -> list[tuple[int, bytes]]:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            return [(int(p.pts), bytes(p)) for p in container.demux(stream) if p.size]

    assert audio_packets(out / ANNOTATED) == audio_packets(video)  # copied, not re-encoded
    # The strip runs: revealed up to the cursor, dark after it on an early frame.
    strip = drawn[2][-6:]
    assert strip[:, :2].mean() > strip[:, -10:].mean() + 30
