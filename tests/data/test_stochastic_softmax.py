"""Temporal stochastic softmax, REINFORCE and guided clip sampling (thesis chapter 3)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidfer.config import load_config, parse_config
from vidfer.data.prepared import load_dataset
from vidfer.data.sampler_zoo import build_sampler
from vidfer.data.stochastic_softmax import Guided, Reinforce, StochasticSoftmax, propagate, softmax
from vidfer.errors import CheckpointError, ConfigError, ManifestError
from vidfer.io.checkpoint import load_checkpoint
from vidfer.pipelines import train

from helpers import copy_dataset


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_eq_3_9_linear_propagation() -> None:
    values = np.zeros(12)
    propagate(values, position=5, score=2.0, radius=4)
    # Weight (F - |i|) / F: 1 at the drawn start, 3/4, 1/2, 1/4 on each side, nothing at F.
    expected = np.zeros(12)
    expected[2:9] = 2.0 * np.array([0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25])
    np.testing.assert_allclose(values, expected)
    propagate(values, position=0, score=-1.0, radius=4)  # clipped at the edge, moves towards -1
    np.testing.assert_allclose(values[:5], [-1.0, -0.75, -0.25, 0.5, 1.5])


def test_softmax_limits() -> None:
    values = np.array([0.0, 1.0, 3.0])
    np.testing.assert_allclose(softmax(values, 0.0), np.full(3, 1 / 3))
    assert softmax(values, 1e6).tolist() == [0.0, 0.0, 1.0]  # max pooling, no overflow


def test_phases_warmup_exploration_exploitation() -> None:
    sampler = StochasticSoftmax(clip_len=4, gamma=1.0, warmup=2, explore=3)
    sampler.bind([23, 3], [None, None])  # 20 start positions; a too-short video has one
    assert len(sampler.values[0]) == 20 and len(sampler.values[1]) == 1
    drawn = []
    for epoch in range(7):
        sampler.set_epoch(epoch)
        assert sampler.wants_scores() == (epoch >= 2)
        start = sampler.starts(0, 23, rng(epoch))
        drawn.append(int(start[0]))
        logits = np.array([[float(epoch), 0.0]])  # score of class 0 = epoch number
        sampler.observe(0, start, logits if epoch >= 2 else None, 0)
        assert sampler.starts(1, 3, rng(epoch)).tolist() == [0]  # (4 - 3) // 2 = 0 padding
    # Exploration: centres of the three thirds of the 20 positions.
    assert drawn[2:5] == [3, 10, 16]
    assert sampler.history[0] == drawn
    # Each exploration epoch initialised its third (before the exploitation updates).
    values = sampler.values[0]
    assert values[0] == 2.0 and values[19] != 0.0
    assert [sampler.phase(e) for e in (0, 2, 4, 5)] == ["warmup", "explore", "explore", "exploit"]


def test_exploitation_follows_the_softmax_of_the_scores() -> None:
    sampler = StochasticSoftmax(clip_len=4, gamma=2.0, warmup=0, explore=0)
    sampler.bind([13], [None])  # 10 positions
    sampler.values[0] = np.linspace(0, 3, 10)
    sampler.set_epoch(0)
    counts = np.bincount(
        [int(sampler.starts(0, 13, rng(seed))[0]) for seed in range(4000)], minlength=10
    )
    expected = softmax(np.linspace(0, 3, 10), 2.0)
    np.testing.assert_allclose(counts / 4000, expected, atol=0.025)


def test_probability_score_and_option_errors() -> None:
    sampler = StochasticSoftmax(clip_len=2, warmup=0, explore=0, score="probability", radius=1)
    sampler.bind([5], [None])
    sampler.observe(0, np.array([2]), np.array([[0.0, np.log(3.0)]]), 1)
    np.testing.assert_allclose(sampler.values[0], [0, 0, 0.75, 0])
    for bad in ({"num_clips": 2}, {"gamma": -1.0}, {"score": "loss"}, {"radius": 0}):
        with pytest.raises(ConfigError):
            build_sampler("stochastic_softmax", **bad)


def test_state_round_trip_through_a_safe_checkpoint() -> None:
    sampler = Reinforce(clip_len=2, warmup=0, lr=0.5)
    sampler.bind([6, 9], [None, None])
    for video, position in ((0, 1), (1, 4), (0, 2)):
        sampler.observe(video, np.array([position]), np.array([[1.0, -1.0]]), video % 2)
    buffer = io.BytesIO()
    torch.save(sampler.state_dict(), buffer)
    buffer.seek(0)
    restored = Reinforce(clip_len=2, warmup=0, lr=0.5)
    restored.bind([6, 9], [None, None])
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for a, b in zip(sampler.values, restored.values, strict=True):
        np.testing.assert_array_equal(a, b)
    assert restored.history == sampler.history and restored.baseline == sampler.baseline
    other = Reinforce(clip_len=2)
    other.bind([6], [None])
    with pytest.raises(CheckpointError, match="do not match"):
        other.load_state_dict(sampler.state_dict())


def test_reinforce_moves_mass_towards_low_loss_clips() -> None:
    sampler = Reinforce(clip_len=1, gamma=1.0, warmup=0, lr=1.0)
    sampler.bind([4], [None])
    good, bad = np.array([[4.0, 0.0]]), np.array([[0.0, 4.0]])  # label 0
    for step in range(40):
        position = step % 4
        sampler.observe(0, np.array([position]), good if position == 2 else bad, 0)
    assert int(np.argmax(sampler.distribution(0))) == 2
    assert sampler.distribution(0)[2] > 0.5


def test_guided_sampling_uses_the_frame_labels() -> None:
    labels = [0.0] * 10 + [4.0] * 4 + [0.0] * 6  # 20 frames, apex at 10-13
    sampler = Guided(clip_len=4, gamma=3.0)
    sampler.bind([20], [labels])
    np.testing.assert_allclose(sampler.values[0][[0, 7, 10, 16]], [0.0, 1.0, 4.0, 0.0])
    sampler.set_epoch(0)
    assert not sampler.wants_scores()
    draws = [int(sampler.starts(0, 20, rng(seed))[0]) for seed in range(300)]
    assert np.mean([7 <= d <= 13 for d in draws]) > 0.9
    with pytest.raises(ConfigError, match="frame_labels column"):
        Guided(clip_len=4).bind([20], [None])


@pytest.fixture(scope="module")
def expressions(tmp_path_factory: pytest.TempPathFactory, expressions_32: Path) -> Path:
    return copy_dataset(expressions_32, tmp_path_factory.mktemp("expr") / "data")


def write_config(folder: Path, manifest: Path, **changes: object) -> Path:
    config = {
        "seed": 1,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {
            "name": "stochastic_softmax",
            "clip_len": 8,
            "params": {"gamma": 1.0, "warmup": 1, "explore": 2},
        },
        "transforms": {"size": 28, "flip": 0.5, "rotation": 10},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "optim": {"lr": 0.001, "schedule": "none"},
        "train": {"epochs": 5, "batch_size": 4},
        "eval": {"pooling": {"name": "softmax", "params": {"gamma": 1.0}}},
    }
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value  # type: ignore[index]
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_training_writes_sampling_maps_and_resumes_exactly(expressions, tmp_path):
    straight = tmp_path / "straight"
    straight.mkdir()
    config = load_config(write_config(straight, expressions))
    train(config, straight / "run")

    maps = json.loads((straight / "run" / "sampling_maps.json").read_text())
    assert len(maps) == 4
    data = load_dataset(config.data)
    frames = {item.row.video_id: item.num_frames for item in data.split("train")}
    for entry in maps:
        assert entry["phases"] == ["warmup", "explore", "explore", "exploit", "exploit"]
        positions = frames[entry["video_id"]] - 8 + 1
        # Exploration draws the centres of the two halves of the start positions.
        assert entry["positions"][1:3] == [int(0.25 * positions), int(0.75 * positions)]
        assert len(entry["distribution"]) == positions
        assert sum(entry["distribution"]) == pytest.approx(1.0)
        assert len(entry["frame_labels"]) == frames[entry["video_id"]]
    assert (straight / "run" / "sampling_maps.png").stat().st_size > 5000

    # Three epochs, then resume to five: the same sampler state and weights as straight through.
    split = tmp_path / "split"
    split.mkdir()
    train(load_config(write_config(split, expressions, train__epochs=3)), split / "run")
    resumed = write_config(split, expressions)
    (split / "run" / "config.yaml").write_text(resumed.read_text())
    train(load_config(resumed), split / "run", resume=True)
    a = load_checkpoint(straight / "run" / "checkpoints" / "last.pt")
    b = load_checkpoint(split / "run" / "checkpoints" / "last.pt")
    assert a["sampler"]["history"] == b["sampler"]["history"]
    for x, y in zip(a["sampler"]["values"], b["sampler"]["values"], strict=True):
        torch.testing.assert_close(x, y)
    for name, tensor in a["model"].items():
        torch.testing.assert_close(tensor, b["model"][name], msg=name)


def test_eval_pooling_must_be_fixed(expressions, tmp_path):
    from vidfer.evaluation.evaluate import eval_pooling
    from vidfer.models import build_pooling

    path = write_config(tmp_path, expressions)
    raw = yaml.safe_load(path.read_text())
    raw["eval"]["pooling"] = {"name": "adaptive_softmax"}
    config = parse_config(raw)
    with pytest.raises(ConfigError, match="learned parameters"):
        eval_pooling(config, build_pooling("avg"), 4)
    raw["eval"]["pooling"] = {"name": "softmax", "params": {"gamma": 10}}
    chosen = eval_pooling(parse_config(raw), build_pooling("avg"), 4)
    assert chosen.gamma == 10.0  # type: ignore[union-attr]


def test_bad_frame_labels_name_the_manifest_line(expressions, tmp_path):
    root = expressions.parent
    lines = expressions.read_text().splitlines()
    first = lines[1].split(",")
    label_file = root / first[5]
    original = label_file.read_text()
    try:
        label_file.write_text("0.0\nnot-a-number\n")
        with pytest.raises(ManifestError, match=r"manifest.csv:2: .*:2: 'not-a-number'"):
            load_dataset(load_config(write_config(tmp_path, expressions)).data)
        label_file.write_text("0.0\n0.5\n")
        with pytest.raises(ManifestError, match="has 2 values but the video has at least"):
            load_dataset(load_config(write_config(tmp_path, expressions)).data)
    finally:
        label_file.write_text(original)
