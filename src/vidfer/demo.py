"""``vidfer demo``: the whole flow on built-in synthetic data, on the CPU, in a few minutes.

It writes a small ``actions`` dataset (classes that differ only in motion), trains a narrow,
temporally dense 3D ResNet-18 on 16-frame clips, evaluates it on whole test videos in one pass
each, and predicts one test video's per-frame timeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from vidfer.config import load_config
from vidfer.data.manifest import read_manifest
from vidfer.data.synth import make_actions
from vidfer.io.atomic import atomic_write_text
from vidfer.pipelines import train
from vidfer.predict import predict_video

DEMO_CONFIG: dict[str, Any] = {
    "seed": 0,
    "data": {"manifest": "data/manifest.csv", "prepare": {"size": 48}, "workers": 2},
    "sampler": {"name": "uniform", "clip_len": 16},
    "transforms": {"size": 48, "crop_scale": [0.8, 1.0], "flip": 0.0},
    "model": {"name": "resnet3d_18", "params": {"width": 0.25, "temporal_stride": 1}},
    "pooling": {"name": "avg"},
    "optim": {"name": "adamw", "lr": 0.0003, "weight_decay": 0.0001, "schedule": "cosine"},
    "train": {"epochs": 25, "batch_size": 8, "patience": 8},
    "eval": {"mode": "dense"},
}


def run_demo(out: Path, *, videos_per_class: int = 20) -> Iterator[str]:
    """Run the demo into ``out``, yielding one line of news per stage."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "data" / "manifest.csv"
    if not manifest.exists():
        make_actions(out / "data", videos_per_class=videos_per_class, seed=0)
    yield f"synthetic 'actions' dataset: {manifest}"
    config_path = out / "demo_actions.yaml"
    atomic_write_text(config_path, yaml.safe_dump(DEMO_CONFIG, sort_keys=False))
    run_folder = out / "run"
    result = train(
        load_config(config_path),
        run_folder,
        resume=(run_folder / "checkpoints" / "last.pt").exists(),
    )
    last = result.metrics[-1]
    yield (
        f"trained {result.epochs} epochs: train accuracy {last['train_accuracy']:.2f}, "
        f"validation accuracy {last.get('val_accuracy', float('nan')):.2f} -> {run_folder}"
    )
    test = (run_folder / "eval_test" / "metrics.json").read_text(encoding="utf-8")
    accuracy = yaml.safe_load(test)["accuracy"]
    yield f"test accuracy (whole videos, one pass each): {accuracy:.2f} -> {run_folder}/eval_test"
    video = next(row for row in read_manifest(manifest).rows if row.split == "test")
    prediction = predict_video(video.path, out / "prediction", run_folder)
    yield (
        f"prediction for {video.rel_path} (true: {video.label}): {prediction.label} "
        f"-> {prediction.out_dir}/timeline.csv, summary.json, timeline.png"
    )
