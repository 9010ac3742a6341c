"""Attention maps at the end of training, and two-step video-level attention through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidfer.cli import main
from vidfer.config import load_config
from vidfer.errors import ConfigError
from vidfer.evaluation.attention_maps import attention_maps_of_run
from vidfer.models.video_attention import VideoAttentionClassifier, attention_profile
from vidfer.pipelines import train
from vidfer.pipelines.video_attention import VideoAttentionSettings, train_video_attention

from helpers import copy_dataset, vidfer_forked


@pytest.fixture(scope="module")
def attentive_run(tmp_path_factory: pytest.TempPathFactory, expressions_32: Path) -> Path:
    """A 2-epoch run of a tiny 3D ResNet with a spatio-temporal mask on synthetic expressions."""
    root = tmp_path_factory.mktemp("attention")
    manifest = copy_dataset(expressions_32, root / "expr")
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {"name": "uniform", "clip_len": 8},
        "transforms": {"size": 28},
        "model": {
            "name": "resnet3d_18",
            "params": {"width": 0.125},
            "attention": {"name": "mask", "params": {"hidden": 8}},
        },
        "train": {"epochs": 2, "batch_size": 4},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    train(load_config(path), root / "run")
    return root / "run"


def test_training_an_attentive_model_writes_its_maps(attentive_run: Path) -> None:
    maps = json.loads((attentive_run / "attention_maps.json").read_text())
    assert len(maps) == 4
    for entry in maps:
        steps = len(entry["centres"])
        assert steps == len(entry["frame_labels"])  # temporally dense: one step per frame
        assert np.asarray(entry["spatial"]).shape[:1] == (steps,)
        assert all(0 <= value <= 2 for value in entry["profile"])  # 1 + tanh(.)
    assert (attentive_run / "attention_maps.png").stat().st_size > 5000
    # Again from the CLI's API, for chosen videos; unknown ids are named.
    first = maps[1]["video_id"]
    (attentive_run / "attention_maps.png").unlink()
    attention_maps_of_run(attentive_run, "test", [first])
    assert json.loads((attentive_run / "attention_maps.json").read_text())[0]["video_id"] == first
    with pytest.raises(ConfigError, match="nobody: not among the test videos"):
        attention_maps_of_run(attentive_run, "test", ["nobody"])


@pytest.mark.slow
def test_video_attention_through_the_cli(
    attentive_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "video"
    result = vidfer_forked(
        "video-attention", str(attentive_run), "--out", str(out), "--epochs", "3", "--range",
        "16", "--d-att", "8",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "video-level attention: accuracy" in result.stdout
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert json.loads((out / "eval_test" / "metrics.json").read_text())["count"] > 0
    profiles = json.loads((out / "attention_profiles.json").read_text())
    for entry in profiles:
        assert sum(entry["profile"]) == pytest.approx(1.0, abs=1e-4)
        assert len(entry["profile"]) == len(entry["centres"])
    assert (out / "attention_profiles.png").stat().st_size > 5000
    # The features are cached in the run: a second experiment extracts nothing.
    stored = sorted((attentive_run / "features").glob("*/*.npy"))
    assert len(stored) == 12
    stamps = [path.stat().st_mtime_ns for path in stored]
    train_video_attention(attentive_run, tmp_path / "again", VideoAttentionSettings(epochs=1))
    assert [path.stat().st_mtime_ns for path in stored] == stamps

    # A bad option, in this process (the command above ran as its own process).
    bad = ["video-attention", str(attentive_run), "--out", str(tmp_path / "bad"), "--range", "0"]
    assert main(bad) == 2
    assert "option 'range_frames': Input should be greater" in capsys.readouterr().err


def test_padding_does_not_change_a_video_score() -> None:
    torch.manual_seed(0)
    model = VideoAttentionClassifier(6, 3, heads=2, d_att=4, dropout=0.0).eval()
    model.record = True
    video = torch.randn(1, 5, 6)
    alone = model(video, torch.ones(1, 5, dtype=torch.bool))
    padded = torch.cat([video, torch.randn(1, 4, 6)], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 4])
    torch.testing.assert_close(model(padded, mask), alone)
    profile = attention_profile(model.weights[0], 5)
    assert profile.shape == (5,) and float(profile.sum()) == pytest.approx(1.0)
    assert float(model.weights[0, :5, 5:].abs().sum()) == 0.0  # padding gets no attention


def test_transformer_regions_for_the_maps() -> None:
    from vidfer.evaluation.attention_maps import sampled_boxes

    identity = torch.eye(3, 4)
    boxes = sampled_boxes(identity, steps=2)
    assert boxes[0] == [[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]] == boxes[1]
    zoom = torch.tensor([[[0.5, 0.0, 0.25], [0.0, 0.5, 0.0]]])  # (T'=1, 2, 3): half size, right
    assert sampled_boxes(zoom, steps=1)[0][0] == [-0.25, -0.5]
