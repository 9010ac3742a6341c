"""Exact resume after a real SIGKILL mid-epoch; training faults: NaN losses, lost loader workers.

Every test runs the real training loop; the kills are real signals to real processes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from pathlib import Path

import pytest

from reliability_helpers import (
    ForkedVidfer,
    assert_same_tensors,
    run_vidfer,
    sidecar,
    wait_until,
    write_run_config,
)
from vidfer.cli import main
from vidfer.faults import ENV as FAULTS_ENV
from vidfer.io.checkpoint import load_checkpoint

STEP_LOG = re.compile(r"epoch (\d+), batch (\d+) of \d+ \(step \d+\): (\S+)")


def batches_seen(stderr: str) -> dict[tuple[int, int], str]:
    """``(epoch, batch) -> video`` from a ``vidfer -v train`` log (one video per batch)."""
    return {(int(e), int(b)): video for e, b, video in STEP_LOG.findall(stderr)}


def checkpoint(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(
    prepared_squares, tmp_path, caplog
):
    # 4 training videos, batches of 1: 4 steps per epoch, 12 in all; K = 6 is mid-epoch 2.
    config = write_run_config(
        tmp_path,
        prepared_squares,
        sampler={
            "name": "stochastic_softmax",
            "clip_len": 4,
            "params": {"warmup": 1, "explore": 1},
        },
        train={"epochs": 3, "num_workers": 2},
    )
    # The uninterrupted run, here (one intra-op thread, as in the processes below).
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    caplog.set_level(logging.DEBUG, logger="vidfer.training.epoch")
    assert main(["train", str(config), "--out", str(straight)]) == 0
    reference = batches_seen(caplog.text)
    # The run to kill: a forked child of this process; the resumed one: a fresh vidfer process.
    process = ForkedVidfer(
        "-v", "train", str(config), "--out", str(killed), stderr=tmp_path / "killed.log"
    )
    reached = wait_until(lambda: (sidecar(killed) or {}).get("step", 0) >= 6, process, 300)
    os.kill(process.pid, signal.SIGKILL)
    first_log = process.communicate(timeout=60)[1]
    assert reached and process.returncode == -signal.SIGKILL
    saved = checkpoint(killed)
    assert saved["step"] >= 6 and 0 < saved["progress"]["batches"] < 4, "not killed mid-epoch"

    resumed = run_vidfer("-v", "train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    assert f"batch {saved['progress']['batches'] + 1} (step {saved['step'] + 1})" in resumed.stderr

    # Same sample order: every batch that both runs trained holds the same video.
    assert len(reference) == 12
    for log in (first_log, resumed.stderr):
        seen = batches_seen(log)
        assert seen and all(reference[key] == video for key, video in seen.items())
    # Bit-identical weights, optimiser and sampler state (the stochastic softmax values and
    # the positions drawn at every epoch).
    expected, actual = checkpoint(straight), checkpoint(killed)
    assert actual["step"] == expected["step"] == 12
    for part in ("model", "pooling", "optimizer", "sampler"):
        assert_same_tensors(expected[part], actual[part], part)
    assert all(len(history) == 3 for history in actual["sampler"]["history"])
    lines = [
        [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for run in (straight, killed)
    ]
    for key in ("epoch", "train_loss", "train_accuracy", "val_loss"):
        assert [line[key] for line in lines[0]] == [line[key] for line in lines[1]], key


def diverging(tmp_path: Path, manifest: Path, on_nan: str) -> Path:
    """A run whose learning rate makes the loss NaN within a few steps."""
    return write_run_config(
        tmp_path,
        manifest,
        optim={"name": "sgd", "lr": 1e6},
        train={"epochs": 2, "on_nan": on_nan},
    )


def test_nan_loss_stops_naming_the_step_and_videos(prepared_squares, tmp_path, capsys):
    config = diverging(tmp_path, prepared_squares, "stop")
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 2
    error = capsys.readouterr().err
    found = re.search(
        r"epoch \d, batch \d of 4 \(step (\d+)\): the loss is nan on video\(s\) "
        r"videos/(left|right)/\d\.mp4; training stopped",
        " ".join(error.split()),
    )
    assert found, error
    assert "Traceback" not in error
    failed = int(found.group(1))
    # Checkpoints were written after every step before the NaN, none after it.
    assert checkpoint(run)["step"] == failed - 1 == sidecar(run)["step"]
    assert not (run / "checkpoints" / "best.pt").exists()


def test_nan_loss_skip_drops_the_batch_and_stops_on_a_diverged_model(
    prepared_squares, tmp_path, capsys, caplog
):
    config = diverging(tmp_path, prepared_squares, "skip")
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 2
    output = " ".join(capsys.readouterr().err.split())
    skipped = re.findall(
        r"\(step \d+\): the loss is nan on video\(s\) videos/\S+; batch skipped", caplog.text
    )
    assert skipped, caplog.text
    # The diverged model is caught at the epoch's end: no epoch checkpoint, no evaluation.
    assert re.search(r"epoch 1: the (validation loss is nan|loss of every batch)", output), output
    assert "Traceback" not in output
    assert checkpoint(run)["epoch"] == 0
    assert not (run / "metrics.jsonl").exists()


def loader_fault(tmp_path: Path, manifest: Path, fault: str) -> tuple[Path, str]:
    """A run with two loader workers, and the fault that one of them meets on videos/right/1."""
    config = write_run_config(
        tmp_path, manifest, train={"epochs": 1, "num_workers": 2, "loader_timeout_s": 3}
    )
    return config, json.dumps({"load": {"videos/right/1": fault}})


def test_a_killed_loader_worker_names_the_video(prepared_squares, tmp_path, capsys, monkeypatch):
    config, faults = loader_fault(tmp_path, prepared_squares, "kill")
    monkeypatch.setenv(FAULTS_ENV, faults)  # the forked loader workers inherit it
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "a data-loader worker failed while loading videos/right/1.mp4" in error, error
    # PyTorch reports the death from its SIGCHLD handler or from the worker's exit status,
    # whichever notices first.
    death = r"DataLoader worker .*(is killed by signal: Killed|exited unexpectedly)"
    assert re.search(death, error), error
    assert "Traceback" not in error


def test_a_stalled_loader_worker_times_out_naming_the_video(prepared_squares, tmp_path):
    config, faults = loader_fault(tmp_path, prepared_squares, "hang")
    run = tmp_path / "run"
    # A real process with a deadline: if the stall were not caught, the test would fail here.
    process = ForkedVidfer(
        "train", str(config), "--out", str(run), stderr=tmp_path / "log", env={FAULTS_ENV: faults}
    )
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 2, stderr
    error = " ".join(stderr.split())
    assert "a data-loader worker failed while loading videos/right/1.mp4" in error, error
    assert re.search(r"DataLoader timed out after 3(\.0)? seconds", error), error
    assert "Traceback" not in error
