"""Clip lengths are checked against the model's own input before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfer.config import RunConfig, load_config, parse_config
from vidfer.errors import ConfigError
from vidfer.pipelines import train
from vidfer.pipelines.clip import check_clip_lengths

from helpers import CONFIGS

DATA = {"manifest": "/data/manifest.csv"}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_clip_config_has_lengths_its_model_takes(path: Path) -> None:
    config = load_config(path)
    if config.kind == "clip":
        check_clip_lengths(config)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"model": {"name": "c3d"}, "sampler": {"clip_len": 8}},
            "model 'c3d' takes clips of 16 frames, but sampler 'uniform' with clip_len 8 gives 8",
        ),
        (
            {"model": {"name": "c3d"}, "eval": {"mode": "windows", "clip_len": 32}},
            "model 'c3d' scores windows of 16 frames, but eval.clip_len is 32",
        ),
        (
            {
                "model": {"name": "fstcn", "params": {"clip_len": 5}},
                "sampler": {"name": "clip_pairs", "clip_len": 4, "params": {"offset": 4}},
                "eval": {"mode": "views"},
            },
            "model 'fstcn' takes clips of 10 frames, but sampler 'clip_pairs' with clip_len 4 "
            "gives 8",
        ),
        (
            {"model": {"name": "c3d", "params": {"dense": True}}, "sampler": {"clip_len": 16}},
            "model 'c3d' without temporal padding needs clips of at least 21 frames, but "
            "sampler 'uniform' with clip_len 16 gives 16",
        ),
        (
            {
                "model": {"name": "resnet3d_18", "params": {"temporal_padding": False}},
                "sampler": {"clip_len": 35},
                "eval": {"mode": "windows", "clip_len": 16},
            },
            "model 'resnet3d_18' without temporal padding needs windows of at least 35 frames, "
            "but eval.clip_len is 16",
        ),
    ],
)
def test_lengths_the_model_cannot_take_are_named(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_clip_lengths(parse_config({"data": DATA, **raw}))


def test_training_refuses_them_before_reading_any_video(tmp_path: Path) -> None:
    config = parse_config({"data": DATA, "model": {"name": "c3d"}, "sampler": {"clip_len": 8}})
    with pytest.raises(ConfigError, match="takes clips of 16 frames"):
        train(config, tmp_path / "run")  # the manifest does not exist: nothing was read
    assert not (tmp_path / "run").exists()


def _config(name: str, params: dict, clip_len: int, eval_len: int) -> RunConfig:
    return parse_config(
        {
            "data": DATA,
            "model": {"name": name, "params": params},
            "sampler": {"clip_len": clip_len},
            "eval": {"mode": "windows", "clip_len": eval_len},
        }
    )


@pytest.mark.parametrize(
    ("name", "clip_len", "params"),
    [
        ("s3d", 16, {}),
        ("mvit_v2_s", 16, {}),
        ("swin3d_t", 32, {}),
        ("swin3d_t", 8, {"clip_len": 8, "in_size": 128}),
    ],
)
def test_torchvision_clip_models_take_their_clip_len_only(
    name: str, clip_len: int, params: dict
) -> None:
    check_clip_lengths(_config(name, params, clip_len, clip_len))
    with pytest.raises(ConfigError, match=f"model {name!r} takes clips of {clip_len} frames"):
        check_clip_lengths(_config(name, params, 4, clip_len))
    with pytest.raises(ConfigError, match=f"eval.clip_len is {clip_len * 2}"):
        check_clip_lengths(_config(name, params, clip_len, clip_len * 2))


def test_mc3_18_is_dense_and_takes_any_clip_len() -> None:
    check_clip_lengths(_config("mc3_18", {"temporal_padding": False}, 16, 24))
