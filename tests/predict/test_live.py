"""``vidfer live``: the carphone sample played in real time, raw rgb24 frames on the CLI's stdin,
Ctrl-C mid-stream, and the errors of a bad source, all through the real command."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from vidfer.errors import ConfigError, VideoError
from vidfer.io.run_folder import RunDir
from vidfer.predict.live import LiveOptions, run_live
from vidfer.predict.live_sources import parse_pipe_format

LIVE = [sys.executable, "-m", "vidfer", "live"]


@pytest.fixture(scope="module")
def carphone() -> Path:
    from vidfer.assets import asset_path, fetch_assets

    fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "fer_mini_xception"])
    return asset_path("carphone")


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _check(lines: list[dict[str, Any]], read: int) -> dict[str, Any]:
    """The results and their summary (last) agree; returns the summary."""
    *results, summary = lines
    assert summary["summary"] and summary["frames_read"] == read
    assert summary["frames_scored"] + summary["frames_dropped"] == read
    with_face = [r for r in results if r["label"] is not None]
    assert with_face, "no frame was scored with a face"
    for result in with_face:
        assert len(result["box"]) == 4 and len(result["probabilities"]) == 7
        assert abs(sum(result["probabilities"].values()) - 1) < 1e-4
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    frames = [r["frame"] for r in results]
    assert frames == sorted(set(frames)) and all(0 <= f < read for f in frames)
    assert summary["delay_ms_median"] > 0 and summary["delay_ms_p95"] >= summary["delay_ms_median"]
    return summary


@pytest.mark.slow
def test_carphone_in_real_time(carphone, tmp_path):
    out = tmp_path / "live.jsonl"
    result = subprocess.run(
        [*LIVE, str(carphone), "--realtime", "--no-preview", "--out", str(out), "--summary",
         str(tmp_path / "summary.json")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    summary = _check(lines, read=120)
    assert summary["status"] == "ok" and summary["window"] == 5
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    # Played at 29.97 frames/s, the stream times are the file's own.
    times = [r["time_s"] for r in lines[:-1]]
    assert times[-1] <= 120 / 29.97 and times == sorted(times)


@pytest.mark.slow
def test_rgb24_frames_on_stdin_then_a_broken_frame(carphone):
    frames = _frames(carphone)[:60]  # (60, 144, 176, 3)
    process = subprocess.Popen(
        [*LIVE, "-", "--pipe-format", "176x144", "--no-preview"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    for frame in frames:
        process.stdin.write(frame.tobytes())
        process.stdin.flush()
        time.sleep(1 / 30)  # the pace of a camera
    process.stdin.write(frames[0].tobytes()[:1000])  # the pipe ends inside a frame
    stdout, stderr = process.communicate(timeout=600)
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    summary = _check(lines, read=60)
    assert summary["status"] == "error" and "ended inside a frame" in summary["reason"]
    assert process.returncode == 2
    assert stderr.decode().strip().splitlines()[-1].startswith("vidfer: error: -: the pipe ended")


@pytest.mark.slow
def test_ctrl_c_mid_stream_stops_cleanly(carphone):
    frames = _frames(carphone)
    process = subprocess.Popen(
        [*LIVE, "-", "--pipe-format", "176x144", "--no-preview"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    for frame in frames[:30]:
        process.stdin.write(frame.tobytes())
    process.stdin.flush()
    first = json.loads(process.stdout.readline())  # a prediction came out: mid-stream now
    assert first["frame"] >= 0
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    lines = [first, *(json.loads(line) for line in stdout.decode().splitlines())]
    assert process.returncode == 0, stderr.decode()
    summary = lines[-1]
    assert summary["summary"] and summary["status"] == "ok"
    assert 0 < summary["frames_read"] <= 30


def test_bad_sources_fail_with_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="--pipe-format"):
        run_live("-")
    with pytest.raises(ConfigError, match="WxH"):
        parse_pipe_format("640by480")
    assert parse_pipe_format("176x144") == (176, 144)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(VideoError, match=r"broken\.mp4.*cannot open it"):
        run_live(str(broken))
    audio = tmp_path / "audio.wav"  # a file PyAV opens, without a video stream
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(VideoError, match=r"audio\.wav: has no video stream"):
        run_live(str(audio))


def test_a_trained_clip_run_scores_its_clip_window(square_run):
    run, manifest = square_run
    video = next(manifest.parent.rglob("*.mp4"))
    options = LiveOptions(realtime=True, preview=False, threads=None)
    session = run_live(str(video), run, options)
    results = list(session)
    summary = session.summary
    assert summary.status == "ok" and summary.window == 8  # the run's eval.clip_len
    assert results and summary.frames_scored + summary.frames_dropped == summary.frames_read
    classes = RunDir(run).classes()
    for result in results:  # one per step, for its newest frame; no face pipeline: no box
        assert result.box is None and list(result.probabilities) == classes
        assert abs(sum(result.probabilities.values()) - 1) < 1e-4
        assert result.frame >= 7  # a whole window was read before it


def test_the_live_model_detects_faces_on_keyframes_as_predict_does(carphone):
    """The stream is read as one video: full detections every ``faces.detect_every`` frames,
    the face carried between, in whatever chunks the scorer takes; the face found in every frame
    and each box where a full detection of that frame puts it (within a few pixels)."""
    from vidfer.faces.keyframes import KeyframeDetector
    from vidfer.faces.pipeline import get_detector
    from vidfer.predict.live_models import live_model
    from vidfer.predict.video import make_predictor

    frames = _frames(carphone)[:40]  # (40, 144, 176, 3)
    model = live_model(make_predictor(), str(carphone))
    assert model.faces is not None and isinstance(model.detector, KeyframeDetector)
    boxes: list[list[float] | None] = []
    sizes = itertools.cycle([1, 3, 1, 5, 2, 4])  # the scorer's takes: at most one window
    while len(boxes) < len(frames):
        take = frames[len(boxes) : len(boxes) + next(sizes)]
        boxes += [box for _, box, _ in model.score(take)]
    every = model.faces.detect_every
    assert model.detector.full_detections == -(-len(frames) // every)  # keyframes only
    full = get_detector("mtcnn", model.faces.min_face_size).detect(frames)
    assert all(box is not None for box in boxes)
    largest = [f.boxes[np.argmax(f.areas)] for f in full]  # (4,) per frame
    gaps = [np.abs(np.array(box) - big).max() for box, big in zip(boxes, largest, strict=True)]
    assert max(gaps) < 5, gaps
