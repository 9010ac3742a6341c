"""Exact resume of the commands besides 3D clip training: real SIGKILLs at random points.

Each test runs the command once uninterrupted (in this process), then as real ``vidfer``
subprocesses killed with ``SIGKILL`` at random moments after their first epoch checkpoint and
resumed with ``--resume`` until one ends by itself, and checks that both runs end bit-identical.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from reliability_helpers import (
    assert_same_tensors,
    sidecar,
    vidfer_argv,
    vidfer_env,
    wait_until,
    write_run_config,
)
from vidfer.cli import main
from vidfer.io.checkpoint import load_checkpoint

KILLS = 3
"""Kills per test at most; each lands after one more epoch checkpoint than the last."""


def killed_and_resumed(start: list[str], resume: list[str], out: Path, seed: int) -> int:
    """Run ``vidfer START``, SIGKILL it at a random moment once ``out``'s last checkpoint moved
    on by an epoch, run ``vidfer RESUME``, and so on until a run ends by itself (at most
    :data:`KILLS` kills); returns the number of kills.
    """
    draw, env, kills, command = random.Random(seed), vidfer_env(), 0, start
    while True:
        done = (sidecar(out) or {}).get("epoch", 0)
        process = subprocess.Popen(
            vidfer_argv(*command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        if kills < KILLS and wait_until(
            lambda done=done: (sidecar(out) or {}).get("epoch", 0) > done, process, 300
        ):
            time.sleep(draw.uniform(0, 0.2))  # anywhere in the next epoch, or in its save
            os.kill(process.pid, signal.SIGKILL)
        stderr = process.communicate(timeout=300)[1].decode()
        if process.returncode == -signal.SIGKILL:
            kills += 1
            command = resume
            continue
        assert process.returncode == 0, stderr
        return kills


def same_checkpoints(straight: Path, resumed: Path, parts: tuple[str, ...]) -> None:
    """Bit-identical best and last checkpoints (the ``parts`` of last.pt) and metrics."""
    best = [load_checkpoint(run / "checkpoints" / "best.pt") for run in (straight, resumed)]
    assert best[0]["epoch"] == best[1]["epoch"]
    assert_same_tensors(best[0]["model"], best[1]["model"], "best.model")
    last = [load_checkpoint(run / "checkpoints" / "last.pt") for run in (straight, resumed)]
    for part in parts:
        assert_same_tensors(last[0][part], last[1][part], f"last.{part}")
    lines = [
        [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for run in (straight, resumed)
    ]
    timeless = [[{k: v for k, v in line.items() if k != "seconds"} for line in x] for x in lines]
    assert timeless[0] == timeless[1]


def same_predictions(straight: Path, resumed: Path) -> None:
    """The same rows, bit for bit, in ``eval_test/predictions.csv``."""
    rows = [
        list(csv.reader((run / "eval_test" / "predictions.csv").open()))
        for run in (straight, resumed)
    ]
    assert rows[0] == rows[1] and len(rows[0]) > 1


def image_tree(root: Path, per_class: int = 6) -> Path:
    """``root/split/label/i.png``: three classes of tiny noisy images, split train/val/test."""
    import cv2

    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for number, label in enumerate(("a", "b", "c")):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 90, (24, 24, 3), dtype=np.uint8)
                image[8 * number : 8 * number + 8] += 120
                cv2.imwrite(str(folder / f"{i}.png"), image)
    return root


@pytest.mark.slow
def test_train_frames_killed_at_random_points_resumes_exactly(tmp_path: Path) -> None:
    tree = image_tree(tmp_path / "images")
    settings = tmp_path / "frames.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "model": "kahou_cnn",
                "params": {"kernel": 5, "maps": [4, 4, 8], "input_size": 16},
                "epochs": 8,
                "patience": 8,
                "batch_size": 6,
                "rotation": 10,  # augmentation draws from torch's global generator
            }
        )
    )
    command = ["train-frames", str(tree), "--config", str(settings)]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*command, "--out", str(straight)]) == 0
    start = [*command, "--out", str(resumed)]
    kills = killed_and_resumed(start, [*start, "--resume"], resumed, seed=1)
    assert kills >= 2
    same_checkpoints(straight, resumed, ("model", "optimizer", "rng", "epoch", "best", "bad"))
    same_predictions(straight, resumed)


def test_resuming_with_other_settings_is_one_line_naming_them(tmp_path: Path, capsys) -> None:
    tree = image_tree(tmp_path / "images", per_class=2)
    out = tmp_path / "run"
    command = ["train-frames", str(tree), "--model", "kahou_cnn", "--out", str(out)]
    tiny = ["--param", "kernel=5", "--param", "maps=[4, 4, 8]", "--param", "input_size=16"]
    assert main([*command, *tiny, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*command, *tiny, "--epochs", "2", "--lr", "0.1", "--resume"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert "settings.json: the run was made with other settings (epochs, lr differ)" in error
    assert main([*command, *tiny, "--epochs", "1"]) == 2
    assert "run: already holds a run; pass --resume to continue it" in capsys.readouterr().err
    fresh = ["train-frames", str(tree), "--model", "kahou_cnn", "--out", str(tmp_path / "new")]
    assert main([*fresh, *tiny, "--resume"]) == 2
    assert "new: nothing to resume (no checkpoints/last.pt)" in capsys.readouterr().err


@pytest.fixture
def trained_run(square_dataset: Path, tmp_path: Path) -> Path:
    """A one-epoch tiny 3D run whose features the video-level attention learns from."""
    config = write_run_config(tmp_path, square_dataset, train={"epochs": 1})
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    return run


@pytest.mark.slow
def test_video_attention_killed_at_random_points_resumes_exactly(
    trained_run: Path, tmp_path: Path
) -> None:
    command = ["video-attention", str(trained_run), "--epochs", "12", "--patience", "12"]
    command += ["--range", "4", "--d-att", "4", "--heads", "2", "--batch-size", "2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*command, "--out", str(straight)]) == 0  # extracts the run's features once
    start = [*command, "--out", str(resumed)]
    kills = killed_and_resumed(start, [*start, "--resume"], resumed, seed=2)
    assert kills >= 2
    same_checkpoints(straight, resumed, ("model", "optimizer", "rng", "epoch", "best_loss", "bad"))
    same_predictions(straight, resumed)
    profiles = [
        json.loads((run / "attention_profiles.json").read_text()) for run in (straight, resumed)
    ]
    assert profiles[0] == profiles[1]
