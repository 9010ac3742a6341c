"""Initial weights carry their input normalisation into the run, unless the config writes one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.video import R3D_18_Weights

from vidfer.config import parse_config
from vidfer.errors import ConfigError
from vidfer.io.run_folder import RunDir
from vidfer.pipelines import resolve_config, train

DATA = {"manifest": "/data/manifest.csv"}


def test_a_torchvision_name_brings_its_presets_mean_and_std() -> None:
    config = resolve_config(
        parse_config({"data": DATA, "model": {"name": "resnet3d_18", "weights": "KINETICS400_V1"}})
    )
    preset = R3D_18_Weights.KINETICS400_V1.transforms()
    assert config.transforms.mean == tuple(preset.mean)
    assert config.transforms.std == tuple(preset.std)


def test_the_fer_model_gets_its_range_and_a_written_normalisation_wins() -> None:
    fer = {"data": DATA, "model": {"name": "i3d_mini_xception"}}
    assert resolve_config(parse_config(fer)).transforms.mean == (0.5, 0.5, 0.5)
    gray = {**fer, "transforms": {"mean": [0.2], "std": [0.3]}}
    assert resolve_config(parse_config(gray)).transforms.mean == (0.2,)
    untrained = {"data": DATA, "model": {"name": "i3d_mini_xception", "params": {"width": 0.5}}}
    assert resolve_config(parse_config(untrained)) == parse_config(untrained)
    plain = parse_config({"data": DATA})
    assert resolve_config(plain) == plain  # nothing known about random weights


@pytest.mark.slow
def test_the_run_folder_records_it_and_resumes_with_it(
    square_dataset: Path, tmp_path: Path
) -> None:
    raw = {
        "data": {"manifest": str(square_dataset), "prepare": {"size": 32}, "workers": 1},
        "sampler": {"clip_len": 4},
        "transforms": {"size": 28},
        "model": {"name": "i3d_mini_xception"},
        "train": {"epochs": 1, "batch_size": 4},
    }
    torch.manual_seed(0)
    train(parse_config(raw), tmp_path / "run")
    recorded = RunDir(tmp_path / "run").config()
    assert recorded.transforms.mean == (0.5, 0.5, 0.5) and recorded.transforms.std == (0.5,) * 3
    with pytest.raises(ConfigError, match="already holds a run"):
        train(parse_config(raw), tmp_path / "run")
    train(parse_config(raw), tmp_path / "run", resume=True)  # the same config, resolved alike
