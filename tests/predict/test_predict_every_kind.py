"""``vidfer predict`` gives every kind of run's evaluation probabilities, in every eval mode.

For each kind of run in :data:`vidfer.pipelines.PIPELINES`, each value of ``eval.mode`` that the
kind reads (only clip runs read it) and ``vidfer video-attention`` outputs (built on a clip run
of each mode its feature extraction reads), a recipe trains a tiny run for one epoch on the
session's moving squares; ``vidfer predict VIDEO --run RUN`` (the CLI's entry point) then scores
a test video of that run, and its video probabilities must be those of the run's own
``eval_test/predictions.csv`` (to 1e-5): evaluation and prediction share one scoring path.

A kind or mode added later without a recipe here fails
:func:`test_every_kind_and_mode_has_a_recipe`.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
import yaml

from vidfer.cli import main
from vidfer.config import EvalConfig, load_config
from vidfer.config.steps import VideoAttentionSettings
from vidfer.pipelines import PIPELINES, train
from vidfer.pipelines.video_attention import train_video_attention

MODES: tuple[str, ...] = get_args(EvalConfig.model_fields["mode"].annotation)
NO_MODE = "-"  # a kind that does not read eval.mode
ATTENTION = "video_attention"  # `vidfer video-attention` on a clip run: not a kind of its own
ATTENTION_MODES = ("dense", "windows")  # what its feature extraction reads (views: windows)

CLIP: dict[str, Any] = {
    "sampler": {"name": "uniform", "clip_len": 8},
    "transforms": {"size": 28},
    "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
    "train": {"epochs": 1, "batch_size": 4},
}


class Runs:
    """The tiny runs of one module, each trained once when first asked for."""

    def __init__(self, root: Path, manifest: Path) -> None:
        self.root, self.manifest = root, manifest
        self.built: dict[tuple[str, str], Path] = {}

    def get(self, key: tuple[str, str]) -> Path:
        """The run of recipe ``key``, trained on first use."""
        if key not in self.built:
            self.built[key] = RECIPES[key](self, self.root / "_".join(key))
        return self.built[key]

    def train(self, sections: dict[str, Any], out: Path) -> Path:
        """Train a run of ``sections`` on the squares into ``out``."""
        data = {"manifest": str(self.manifest), "prepare": {"size": 32}, "workers": 1}
        path = out.with_suffix(".yaml")
        path.write_text(yaml.safe_dump({"seed": 0, "data": data, **sections}))
        train(load_config(path), out)
        return out


def _clip(mode: str) -> Callable[[Runs, Path], Path]:
    def build(runs: Runs, out: Path) -> Path:
        evaluation = {"mode": mode, "clip_len": 8, "stride": 4} if mode == "windows" else {}
        return runs.train({**CLIP, "eval": {"mode": mode, **evaluation}}, out)

    return build


def _fstcn_views(runs: Runs, out: Path) -> Path:
    """FstCN's clip pairs scored in views: 2 clips x 9 crops x flips, SCI-fused."""
    sections = {
        "sampler": {
            "name": "clip_pairs",
            "clip_len": 3,
            "stride": 2,
            "num_clips": 2,
            "params": {"offset": 2},
        },
        "transforms": {"size": 28},
        "model": {"name": "fstcn", "params": {"width": 0.0625, "clip_len": 3, "in_size": 32}},
        "train": {"epochs": 1, "batch_size": 4},
        "eval": {"mode": "views", "views": {"clips": 2, "crops": 9, "flip": True}},
    }
    return runs.train(sections, out)


def _frames(runs: Runs, out: Path) -> Path:
    """A linear SVM over the mean of a clip run's backbone features."""
    extractor = {"video_run": str(runs.get(("clip", "dense")))}
    classifier = {"name": "linear_svm", "params": {"C": [1.0]}}
    return runs.train({"frames": {"extractors": [extractor], "classifier": classifier}}, out)


def _sparse_ae(runs: Runs, out: Path) -> Path:
    sections = {
        "sparse_ae": {
            "codes": 8,
            "patches_per_video": 20,
            "epochs": 1,
            "motion_share": 0.05,
            "grayscale": False,
        },
        "train": {"epochs": 1, "batch_size": 1},
    }
    return runs.train(sections, out)


def _activity(runs: Runs, out: Path) -> Path:
    activity = {
        "patch": 8,
        "depth": 4,
        "hidden": 8,
        "components": 16,
        "patches_per_video": 10,
        "epochs": 1,
        "motion_share": 0.05,
        "grayscale": False,
        "words": 6,
    }
    return runs.train({"activity": activity}, out)


def _attention(mode: str) -> Callable[[Runs, Path], Path]:
    def build(runs: Runs, out: Path) -> Path:
        settings = VideoAttentionSettings(epochs=1, range_frames=16, heads=2, d_att=8, batch_size=4)
        train_video_attention(runs.get(("clip", mode)), out, settings)
        return out

    return build


RECIPES: dict[tuple[str, str], Callable[[Runs, Path], Path]] = {
    ("clip", "dense"): _clip("dense"),
    ("clip", "windows"): _clip("windows"),
    ("clip", "views"): _fstcn_views,
    ("frames", NO_MODE): _frames,
    ("sparse_ae", NO_MODE): _sparse_ae,
    ("activity", NO_MODE): _activity,
    **{(ATTENTION, mode): _attention(mode) for mode in ATTENTION_MODES},
}
"""(kind, eval mode) -> how to train its tiny run into a folder."""


def test_every_kind_and_mode_has_a_recipe() -> None:
    expected = {
        (kind, mode)
        for kind in PIPELINES
        for mode in (MODES if kind == "clip" else (NO_MODE,))  # only clip runs read eval.mode
    } | {(ATTENTION, mode) for mode in ATTENTION_MODES}
    assert set(RECIPES) == expected
    assert set(ATTENTION_MODES) < set(MODES)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, square_source: Path) -> Runs:
    root = tmp_path_factory.mktemp("every_kind")
    manifest = Path(shutil.copytree(square_source, root / "squares")) / "manifest.csv"
    return Runs(root, manifest)


def _predictions(run: Path) -> dict[str, tuple[str, np.ndarray]]:
    """The run's test predictions: video id -> (predicted class, probabilities)."""
    with (run / "eval_test" / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["video_id"]: (
            row["prediction"],
            np.array([float(value) for key, value in row.items() if key.startswith("p_")]),
        )
        for row in rows
    }


@pytest.mark.slow
@pytest.mark.parametrize("key", list(RECIPES), ids=["/".join(key) for key in RECIPES])
def test_predict_gives_the_evaluation_probabilities(
    key: tuple[str, str], runs: Runs, tmp_path: Path
) -> None:
    run = runs.get(key)
    video_id, (label, expected) = next(iter(_predictions(run).items()))
    video = next(runs.manifest.parent.rglob(f"{video_id}.mp4"))
    out = tmp_path / "prediction"
    assert main(["predict", str(video), "--run", str(run), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["label"]) == ("ok", label)
    got = np.array(list(summary["probabilities"].values()))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    if key[0] == ATTENTION:  # the attention each feature step receives, at its frame
        weights = [step["weight"] for step in summary["clip_weights"]]
        assert summary["model"] == "video_attention:resnet3d_18"
        assert len(weights) > 1 and sum(weights) == pytest.approx(1.0, abs=1e-4)


def test_a_video_attention_output_without_its_base_run_is_one_line(
    square_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "attention"
    folder.mkdir()
    settings = {"run": str(tmp_path / "gone"), **VideoAttentionSettings().model_dump()}
    (folder / "settings.json").write_text(json.dumps(settings))
    video = next(square_source.rglob("*.mp4"))
    assert main(["predict", str(video), "--run", str(folder), "--out", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err
    assert "settings.json: its base run" in error and "gone" in error
    assert not (tmp_path / "p").exists()
