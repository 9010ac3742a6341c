"""Exact resume of the commands besides 3D clip training: real SIGKILLs at random points.

Each test runs the command once uninterrupted (in this process), then in a forked child of this
process killed with ``SIGKILL`` at a random moment after its first epoch checkpoint, and resumed
with ``--resume`` as a real ``vidfer`` subprocess (a fresh interpreter) until one ends by itself,
and checks that both runs end bit-identical.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from reliability_helpers import (
    ForkedVidfer,
    assert_same_tensors,
    sidecar,
    vidfer_argv,
    vidfer_env,
    wait_until,
    write_run_config,
)
from vidfer.cli import main
from vidfer.io.checkpoint import load_checkpoint

KILLS = 1
"""Kills per test at most (one per kind keeps the suite within its time; each test kills at a
random point after one or two checkpoint writes)."""


def progress(out: Path) -> int:
    """How far a run is: its checkpoint files (stages, best, last) plus its last epoch."""
    sidecars = list((out / "checkpoints").glob("*.json"))
    return len(sidecars) + (sidecar(out) or {}).get("epoch", 0)


def killed_and_resumed(start: list[str], resume: list[str], out: Path, seed: int) -> int:
    """Run ``vidfer START``, SIGKILL it at a random moment once ``out`` went one or two
    checkpoint writes further, run ``vidfer RESUME``, and so on until a run ends by itself (at
    most :data:`KILLS` kills, early enough in runs long enough that a fast machine is killed as
    often); returns the number of kills. A run to kill is a forked child of this process; the
    run that ends, a fresh ``vidfer`` process.
    """
    draw, env, kills, command = random.Random(seed), vidfer_env(), 0, start
    while True:
        done = progress(out)
        process: ForkedVidfer | subprocess.Popen[str] = (
            ForkedVidfer(*command, stderr=out.with_name(f"{out.name}.{kills}.log"))
            if kills < KILLS
            else subprocess.Popen(
                vidfer_argv(*command),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
        target = done + draw.randint(1, 2)  # one or two more checkpoint writes
        if kills < KILLS and wait_until(lambda t=target: progress(out) >= t, process, 300):
            time.sleep(draw.uniform(0, 0.02))  # in the next epoch or stage, or a save
            os.kill(process.pid, signal.SIGKILL)
        stderr = process.communicate(timeout=300)[1]
        if process.returncode == -signal.SIGKILL:
            kills += 1
            command = resume
            continue
        assert process.returncode == 0, stderr
        print(f"{' '.join(start[:1])}: {kills} SIGKILL(s) survived")  # shown by pytest -rP
        return kills


def timeless(value: Any) -> Any:
    """``value`` without the ``seconds`` of its metrics lines (wherever they are nested)."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def same_runs(straight: Path, resumed: Path) -> None:
    """Bit-identical checkpoints (every tensor and value, the generators' states included),
    metrics (but the seconds) and test predictions."""
    names = sorted(path.name for path in (straight / "checkpoints").glob("*.pt"))
    assert names == sorted(path.name for path in (resumed / "checkpoints").glob("*.pt"))
    for name in names:
        states = [load_checkpoint(run / "checkpoints" / name) for run in (straight, resumed)]
        assert_same_tensors(timeless(states[0]), timeless(states[1]), name)
    lines = [
        [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for run in (straight, resumed)
    ]
    assert timeless(lines[0]) == timeless(lines[1])
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
                "patience": 20,
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
    assert kills == KILLS
    same_runs(straight, resumed)


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
    assert "new: nothing to resume (no settings.json: no run started)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_source(prepared_squares: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch tiny 3D run, trained once for this file's tests (read-only: see
    ``trained_run``)."""
    folder = tmp_path_factory.mktemp("trained")
    config = write_run_config(folder, prepared_squares, train={"epochs": 1})
    assert main(["train", str(config), "--out", str(folder / "run")]) == 0
    return folder / "run"


@pytest.fixture
def trained_run(trained_source: Path, tmp_path: Path) -> Path:
    """A one-epoch tiny 3D run whose features the video-level attention learns from (a copy of
    ``trained_source``: the test's commands cache the run's features in it)."""
    return Path(shutil.copytree(trained_source, tmp_path / "run"))


@pytest.mark.slow
def test_video_attention_killed_at_random_points_resumes_exactly(
    trained_run: Path, tmp_path: Path
) -> None:
    command = ["video-attention", str(trained_run), "--epochs", "8", "--patience", "8"]
    command += ["--range", "4", "--d-att", "4", "--heads", "2", "--batch-size", "2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*command, "--out", str(straight)]) == 0  # extracts the run's features once
    start = [*command, "--out", str(resumed)]
    kills = killed_and_resumed(start, [*start, "--resume"], resumed, seed=2)
    assert kills == KILLS
    same_runs(straight, resumed)
    profiles = [
        json.loads((run / "attention_profiles.json").read_text()) for run in (straight, resumed)
    ]
    assert profiles[0] == profiles[1]


def killed_training(config: Path, tmp_path: Path, seed: int) -> tuple[Path, Path, int]:
    """``vidfer train CONFIG`` uninterrupted, and killed and resumed; both runs and the kills."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", str(config), "--out", str(straight)]) == 0  # prepares the videos
    start = ["train", str(config), "--out", str(resumed)]
    return (
        straight,
        resumed,
        killed_and_resumed(start, ["train", "--resume", str(resumed)], resumed, seed),
    )


@pytest.mark.slow
def test_a_recurrent_frame_pipeline_killed_at_random_points_resumes_exactly(
    trained_run: Path, prepared_squares: Path, tmp_path: Path
) -> None:
    config = tmp_path / "frames.yaml"
    frames = {
        "extractors": [{"video_run": str(trained_run)}],
        "sequence_length": 3,
        "classifier": {"name": "lstm", "params": {"hidden": 4}},
    }
    data = {"manifest": str(prepared_squares), "prepare": {"size": 16}, "workers": 1}
    train = {"epochs": 8, "patience": 8, "batch_size": 2}
    config.write_text(yaml.safe_dump({"seed": 5, "data": data, "frames": frames, "train": train}))
    straight, resumed, kills = killed_training(config, tmp_path, seed=3)
    assert kills == KILLS
    same_runs(straight, resumed)


@pytest.fixture(scope="module")
def action_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 tiny synthetic actions, made once for this file's tests; returns their manifest.
    Read-only: the first test's preparation of them is the next one's."""
    from vidfer.data.synth import make_actions

    return make_actions(tmp_path_factory.mktemp("actions"), videos_per_class=3, size=32)


def actions(tmp_path: Path, manifest: Path, kind: str, settings: dict[str, object]) -> Path:
    """A run config of ``kind`` (``sparse_ae``, ``activity``) on the actions of ``manifest``."""
    config: dict[str, Any] = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        kind: {"patches_per_video": 10, "motion_share": 0.05, "grayscale": False, **settings},
    }
    if kind == "sparse_ae":  # the BLSTM's training
        config["optim"] = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
        config["train"] = {"epochs": 8, "patience": 8, "batch_size": 1}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_the_sparse_autoencoder_pipeline_killed_at_random_points_resumes_exactly(
    action_videos: Path, tmp_path: Path
) -> None:
    config = actions(tmp_path, action_videos, "sparse_ae", {"codes": 8, "epochs": 2})
    straight, resumed, kills = killed_training(config, tmp_path, seed=4)
    assert kills == KILLS
    same_runs(straight, resumed)


@pytest.mark.slow
def test_the_activity_pipeline_killed_at_random_points_resumes_exactly(
    action_videos: Path, tmp_path: Path
) -> None:
    settings = {"patch": 8, "depth": 4, "hidden": 8, "components": 16, "epochs": 3, "words": 6}
    config = actions(tmp_path, action_videos, "activity", settings)
    straight, resumed, kills = killed_training(config, tmp_path, 5)
    assert kills >= 1
    same_runs(straight, resumed)


@pytest.mark.slow
def test_a_closed_form_frame_head_fitted_again_from_the_cache_is_the_same(
    trained_run: Path, prepared_squares: Path, tmp_path: Path
) -> None:
    """What a resumed closed-form run does: fit again, the features read from their cache."""
    config = tmp_path / "svm.yaml"
    frames = {"extractors": [{"video_run": str(trained_run)}], "classifier": {"name": "rbf_svm"}}
    data = {"manifest": str(prepared_squares), "prepare": {"size": 16}, "workers": 1}
    config.write_text(yaml.safe_dump({"seed": 5, "data": data, "frames": frames}))
    extracted, cached = tmp_path / "extracted", tmp_path / "cached"
    assert not (trained_run / "features").exists()
    assert main(["train", str(config), "--out", str(extracted)]) == 0
    assert main(["train", str(config), "--out", str(cached)]) == 0
    same_runs(extracted, cached)
    assert main(["train", "--resume", str(cached)]) == 0
    same_runs(extracted, cached)
