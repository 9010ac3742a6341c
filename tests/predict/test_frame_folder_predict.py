"""``vidfer predict`` on a frame folder: the timeline of the video whose frames it holds."""

from __future__ import annotations

import json
import os

import pytest

from vidfer.assets import asset_path
from vidfer.io.video import decode

from helpers import vidfer_forked, write_frame_folder


@pytest.mark.slow
def test_predict_on_a_frame_folder_gives_the_videos_timeline(carphone_prediction, tmp_path):
    video_out, _ = carphone_prediction  # `vidfer predict CARPHONE` (the default face model)
    video = decode(asset_path("carphone"))
    folder = write_frame_folder(tmp_path / "carphone_frames", video.frames)  # lossless PNGs
    out = tmp_path / "out"
    result = vidfer_forked(
        "predict", str(folder), "--out", str(out), "--frame-folder-fps", repr(video.info.fps),
        env={**os.environ, "COLUMNS": "1000"},  # wide lines
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{folder}: ")
    # Every frame, face box and probability (and time, at the video's rate) as from the video.
    rows = (out / "timeline.csv").read_text().splitlines()
    assert len(rows) == 121 and rows == (video_out / "timeline.csv").read_text().splitlines()
    summary = json.loads((out / "summary.json").read_text())
    expected = json.loads((video_out / "summary.json").read_text())
    assert summary["video"] == str(folder)
    assert summary["label"] == expected["label"] and summary["status"] == "ok"
    assert summary["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-9)

    missing = vidfer_forked("predict", str(tmp_path / "nothing"), "--out", str(out))
    assert missing.returncode == 2
    assert "no such file or frame folder" in missing.stderr + missing.stdout
