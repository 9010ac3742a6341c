"""``vidfer predict`` on many videos in one process: the index, broken videos, resume after a
kill (a real ``vidfer`` subprocess stopped with SIGKILL)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vidfer.errors import ConfigError
from vidfer.io.writer import write_video
from vidfer.predict import predict_many, predict_video
from vidfer.predict.inputs import resolve_inputs

from helpers import moving_square, write_square_dataset


def _index(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "index.csv").open(newline="") as handle:
        return {Path(row["video"]).name: row for row in csv.DictReader(handle)}


def test_inputs_folders_globs_manifests(tmp_path):
    manifest = write_square_dataset(tmp_path / "squares", per_class=2)
    videos = tmp_path / "squares" / "videos"
    by_folder = resolve_inputs([videos])
    assert [p.relative_to(videos).as_posix() for p in by_folder] == [
        "left/0.mp4",
        "left/1.mp4",
        "right/0.mp4",
        "right/1.mp4",
    ]
    assert resolve_inputs([str(videos / "*" / "1.mp4")]) == [
        videos / "left/1.mp4",
        videos / "right/1.mp4",
    ]
    # A manifest, then a file it already named: each video once.
    listed = resolve_inputs([manifest, videos / "left" / "0.mp4"])
    assert len(listed) == 4 and {p.resolve() for p in listed} == {p.resolve() for p in by_folder}
    for bad, message in [
        (tmp_path / "nope.mp4", "no such file"),
        (tmp_path / "*.avi", "matches no"),
    ]:
        with pytest.raises(ConfigError, match=message):
            resolve_inputs([bad])


@pytest.mark.slow
def test_many_videos_index_failures_and_rerun(square_run, tmp_path):
    run, manifest = square_run
    videos = manifest.parent / "videos"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    result = predict_many([videos, broken], out, run)
    assert (result.predicted, result.failed, result.skipped) == (4, 1, 0)
    rows = [row.status for row in result.rows]
    assert rows[:4] == ["ok"] * 4 and rows[4] not in ("ok", "")
    index = _index(out)
    assert index["broken.mp4"]["status"] == rows[4] and index["broken.mp4"]["reason"]
    # Two files named 0.mp4: one folder each. Every video as predict_video scores it alone.
    folders = {row.output for row in result.rows[:4]}
    assert len(folders) == 4 and all((out / f / "summary.json").is_file() for f in folders)
    alone = predict_video(videos / "right" / "1.mp4", tmp_path / "alone", run)
    row = next(r for r in result.rows if r.video.endswith("right/1.mp4"))
    assert row.label == alone.label
    assert row.probabilities == pytest.approx(alone.probabilities, abs=1e-6)
    # A rerun does nothing new; the failed video is tried again only when asked.
    again = predict_many([videos, broken], out, run)
    assert (again.predicted, again.failed, again.skipped) == (0, 0, 5)
    assert [r.status for r in again.rows] == rows
    retried = predict_many([videos, broken], out, run, retry_failed=True)
    assert (retried.predicted, retried.failed, retried.skipped) == (0, 1, 4)


def test_device_moves_a_runs_model_and_scores_the_same(square_run, tmp_path):
    run, manifest = square_run
    video = manifest.parent / "videos" / "right" / "1.mp4"
    default = predict_video(video, tmp_path / "default", run)  # train.device auto: the CPU here
    on_cpu = predict_many([video], tmp_path / "cpu", run, device="cpu")
    assert on_cpu.rows[0].label == default.label
    assert on_cpu.rows[0].probabilities == pytest.approx(default.probabilities, abs=1e-6)
    if torch.cuda.is_available():
        return
    no_gpu = r"^option '--device': CUDA was asked for but no GPU is available; use auto or cpu$"
    with pytest.raises(ConfigError, match=no_gpu):
        predict_video(video, tmp_path / "gpu", run, device="cuda")
    with pytest.raises(ConfigError, match=no_gpu):
        predict_many([video], tmp_path / "gpu", run, device="cuda:0")
    assert not (tmp_path / "gpu").exists()


@pytest.mark.slow
def test_resumes_after_sigkill(square_run, tmp_path):
    run, _ = square_run
    folder = tmp_path / "videos"
    count = 24
    for i in range(count):
        write_video(folder / f"v{i:02d}.mp4", moving_square(1 - 2 * (i % 2), 40, seed=i), 10.0)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vidfer", "predict", str(folder), "--run", str(run)]
    command += ["--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "index.csv").is_file() and len(_index(out)) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first = _index(out)
    assert 3 <= len(first) < count
    stamps = {
        name: (out / row["output"] / "summary.json").stat().st_mtime_ns
        for name, row in first.items()
    }
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    # A video may have been written whole after the index was: it is done too.
    done = re.search(r"(\d+) video\(s\) predicted, (\d+) already done", result.stdout)
    assert done is not None, result.stdout
    assert int(done[1]) + int(done[2]) == count and int(done[2]) >= len(first)
    final = _index(out)
    assert sorted(final) == [f"v{i:02d}.mp4" for i in range(count)]
    assert all(row["status"] == "ok" and row["label"] for row in final.values())
    for name, stamp in stamps.items():  # the videos done before the kill were not redone
        assert (out / final[name]["output"] / "summary.json").stat().st_mtime_ns == stamp
        assert final[name] == first[name]
    summary = json.loads((out / final["v05.mp4"]["output"] / "summary.json").read_text())
    assert summary["label"] == final["v05.mp4"]["label"]
