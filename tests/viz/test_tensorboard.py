"""``train.tensorboard: true``: the event files, read back with TensorBoard's own reader."""

from __future__ import annotations

import json

import pytest
import yaml

from vidfer.config import load_config
from vidfer.pipelines import train

from helpers import copy_dataset

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


@pytest.mark.slow
def test_training_writes_tensorboard_events(square_source, tmp_path):
    manifest = copy_dataset(square_source, tmp_path / "squares")
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {"clip_len": 8},
        "transforms": {"size": 24},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "optim": {"schedule": "cosine"},
        "train": {"epochs": 2, "batch_size": 2, "tensorboard": True},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    run = train(load_config(tmp_path / "run.yaml"), tmp_path / "run").run.folder
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = event_accumulator.EventAccumulator(
        str(run / "tensorboard"), size_guidance={event_accumulator.IMAGES: 0}
    )
    events.Reload()
    tags = events.Tags()
    for tag, key in [("train/loss", "train_loss"), ("val/loss", "val_loss"), ("lr", "lr"),
                     ("val/accuracy", "val_accuracy")]:  # fmt: skip
        written = events.Scalars(tag)
        assert [event.step for event in written] == [1, 2]
        assert [event.value for event in written] == pytest.approx([ln[key] for ln in lines])
    assert {"confusion/val", "confusion/test"} <= set(tags["images"])
    image = events.Images("confusion/test")[0]
    assert image.step == 2 and image.width > 100 and image.height > 100
