"""Fixtures of the prediction tests: one small trained clip run shared by their files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vidfer.config import load_config
from vidfer.pipelines import train

from helpers import write_square_dataset


@pytest.fixture(scope="session")
def square_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A narrow 3D ResNet trained one epoch on the squares: (run folder, dataset manifest)."""
    root = tmp_path_factory.mktemp("predict_many")
    manifest = write_square_dataset(root / "squares", per_class=2)
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {"clip_len": 8},
        "transforms": {"size": 24},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "train": {"epochs": 1, "batch_size": 2},
    }
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    return train(load_config(root / "run.yaml"), root / "run").run.folder, manifest
