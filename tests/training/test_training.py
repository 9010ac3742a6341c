"""Training end to end through the real CLI, exact resume after SIGKILL, safe checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from vidfer.cli import main
from vidfer.config import load_config
from vidfer.errors import CheckpointError
from vidfer.io.checkpoint import load_checkpoint
from vidfer.pipelines import train

from helpers import BROKEN, run_vidfer_session, vidfer_forked

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread, as this process trains (conftest.py)


def vidfer(*args: str) -> subprocess.CompletedProcess[str]:
    result = vidfer_forked(*args, env=ENV)
    assert result.returncode == 0, result.stderr
    return result


def write_config(folder: Path, manifest: Path, **sections) -> Path:
    config = {
        "seed": 3,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {"name": "uniform", "clip_len": 8},
        "transforms": {
            "size": 28,
            "flip": 0.5,
            "rotation": 10,
            "color_jitter": [0.2, 0.2, 0.2, 0.05],
        },
        "model": {
            "name": "resnet3d_18",
            "params": {"width": 0.125, "dropout_input": 0.1, "dropout_features": 0.3},
        },
        "train": {"epochs": 2, "batch_size": 3},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_evaluate_predict_through_the_cli(square_dataset, tmp_path):
    root = square_dataset.parent
    lines = square_dataset.read_text().splitlines()
    for name, make in BROKEN.items():
        make(root / f"{name}.mp4", root / "videos/left/0.mp4")
        lines.append(f"{name}.mp4,right,train,sx")
    square_dataset.write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path, square_dataset)
    run, out = tmp_path / "run", tmp_path / "prediction"
    sets = ["--set", "optim.schedule=step", "--set", "pooling.name=adaptive_softmax"]
    result = run_vidfer_session(
        [
            ["train", str(config), "--out", str(run), *sets],
            ["evaluate", str(run), "--split", "test"],
            ["predict", str(root / "videos/right/3.mp4"), "--run", str(run), "--out", str(out)],
        ],
        cwd=tmp_path,
        env=ENV,
    )  # one Python for the three commands
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in metrics] == [1, 2]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(metrics[0])
    rejects = [json.loads(line) for line in (run / "rejects.jsonl").read_text().splitlines()]
    assert sorted(item["status"] for item in rejects) == ["corrupt", "empty", "no_video_stream"]
    for name in (
        "config.yaml",
        "classes.json",
        "curves.png",
        "checkpoints/last.pt",
        "checkpoints/last.json",
        "eval_test/confusion.png",
        "eval_test/confusion.csv",
    ):
        assert (run / name).exists(), name

    assert "test: accuracy" in result.stdout
    evaluation = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert evaluation["count"] == 2 and len(evaluation["confusion"]) == 2
    assert set(evaluation["per_class_accuracy"]) == {"left", "right"}

    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["label"] in ("left", "right")
    assert sum(summary["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    weights = [step["weight"] for step in summary["clip_weights"]]
    assert len(weights) == 20  # one score step per frame: temporally dense
    assert sum(weights) == pytest.approx(1.0, abs=1e-4) and min(weights) >= 0
    timeline = (out / "timeline.csv").read_text().splitlines()
    assert timeline[0].startswith("frame,time_s,face") and len(timeline) == 21
    assert (out / "timeline.png").stat().st_size > 1000


CLI_USER_ERRORS = [
    (["train", "missing.yaml", "--out", "x"], "missing.yaml: config file not found"),
    (["evaluate", "not_a_run"], "not a vidfer run folder"),
    (["train", "--resume", "nowhere"], "nowhere: not a vidfer run folder"),
    (["video-attention", "nowhere", "--out", "x"], "nowhere: not a vidfer run folder"),
    (["attention-maps", "nowhere"], "nowhere: not a vidfer run folder"),
]


def test_cli_user_errors_are_one_line(tmp_path, monkeypatch, capsys):
    """The first through ``python -m vidfer`` (exit status 2, no traceback), the others through
    the same ``vidfer.cli.main`` in this process (an exception would fail the test)."""
    (args, message), *others = CLI_USER_ERRORS
    result = subprocess.run(
        [sys.executable, "-m", "vidfer", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    monkeypatch.chdir(tmp_path)
    for args, message in others:
        assert main(args) == 2, args
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error


def test_unknown_label_fails_before_any_work(square_dataset, tmp_path, capsys):
    square_dataset.write_text(square_dataset.read_text() + "videos/left/0.mp4,up,train,s9\n")
    config = write_config(tmp_path, square_dataset, data={"classes": ["left", "right"]})
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "manifest.csv:10: unknown label 'up'" in capsys.readouterr().err
    assert not (square_dataset.parent / ".vidfer_store").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


def _model_state(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(square_dataset, tmp_path):
    config = write_config(tmp_path, square_dataset, train={"epochs": 4, "batch_size": 2})
    assert main(["prepare", str(config)]) == 0  # both runs start from the same store
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(load_config(config), straight)  # here: the killed run and its resume are processes

    process = subprocess.Popen(
        [sys.executable, "-m", "vidfer", "train", str(config), "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    metrics = killed / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert json.loads((killed / "checkpoints" / "last.json").read_text())["epoch"] == 2

    vidfer("train", "--resume", str(killed))
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    expected, resumed = _model_state(straight), _model_state(killed)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    straight_lines = [
        json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()
    ]
    assert [line["train_loss"] for line in straight_lines] == [line["train_loss"] for line in lines]


class _Exploit:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickled_code_in_a_checkpoint_is_refused(tmp_path):
    target = tmp_path / "pwned.txt"
    crafted = tmp_path / "evil.pt"
    torch.save({"model": _Exploit(str(target))}, crafted)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(crafted)
    assert not target.exists()
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


SAMPLERS = {
    "uniform": ({"name": "uniform", "clip_len": 8}, 1),
    # Learning sampler: workers copy it each epoch, the main process observes the scores.
    "stochastic_softmax": (
        {"name": "stochastic_softmax", "clip_len": 8, "params": {"warmup": 1, "explore": 1}},
        3,
    ),
}
"""Sampler and epochs of each pair of runs of ``test_loader_workers_do_not_change_the_run``."""


def test_loader_workers_do_not_change_the_run(square_dataset, tmp_path):
    """Two loader workers train the run none train, bit for bit, with either kind of sampler.
    One ``vidfer prepare`` for all four runs (one store), trained in this process (the workers
    are forked from it as from the CLI's)."""
    for name, (sampler, epochs) in SAMPLERS.items():
        folder = tmp_path / name
        folder.mkdir()
        config = write_config(
            folder, square_dataset, train={"epochs": epochs, "batch_size": 3}, sampler=sampler
        )
        if name == "uniform":
            assert main(["prepare", str(config)]) == 0
        for workers in (0, 2):
            overrides = [f"train.num_workers={workers}"]
            train(load_config(config, overrides), folder / f"w{workers}")
        serial, parallel = _model_state(folder / "w0"), _model_state(folder / "w2")
        for key in serial:
            assert torch.equal(serial[key], parallel[key]), (name, key)
        if name != "uniform":
            states = [
                load_checkpoint(folder / f"w{w}" / "checkpoints" / "last.pt")["sampler"]
                for w in (0, 2)
            ]
            assert states[0]["history"] == states[1]["history"]
            assert all(len(h) == 3 for h in states[0]["history"])
            assert any(v.abs().sum() > 0 for v in states[0]["values"])
