"""Transfer with ``model.weights``: a 3D ResNet-18 pretrained by vidfer on one synthetic task and
fine-tuned on another, against the same network trained from scratch on the second task.

Task A (pretraining): the motion-only ``actions`` (walk left/right, run, jump; 20 videos per
class). Task B: the ``scenes`` actions (walk or jump in front of a house or a tree: motion and
appearance both needed), with few training videos. For each seed, the pretrained run's folder is
the fine-tuned run's ``model.weights`` (its backbone; a new classifier for task B's classes);
the scratch run is the same config without it. Prints the test accuracy of both (whole videos),
mean +- standard error over the seeds.

Run: .venv/bin/python benchmarks/transfer.py [--seeds 0 1 2] [--pretrain-epochs 20] [--epochs 15]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from common import add_run_arguments, print_per_seed, run_parallel
from vidfer.config import parse_config
from vidfer.data.synth import make_actions
from vidfer.pipelines import train


def run_config(manifest: Path, epochs: int, seed: int, weights: str | None) -> dict[str, Any]:
    """The run config of every run: only the data, the epochs, the seed and the weights vary."""
    model: dict[str, Any] = {"name": "resnet3d_18", "params": {"width": 0.25}}
    if weights is not None:
        model["weights"] = weights
    return {
        "seed": seed,
        "data": {"manifest": str(manifest), "prepare": {"size": 48}, "workers": 1},
        "sampler": {"name": "uniform", "clip_len": 16},
        "transforms": {"size": 48, "crop_scale": [0.8, 1.0], "flip": 0.0},
        "model": model,
        "optim": {"name": "adamw", "lr": 0.0003, "weight_decay": 0.0001, "schedule": "cosine"},
        "train": {"epochs": epochs, "batch_size": 8},
    }


def test_accuracy(run: Path) -> float:
    """The run's test accuracy, as its evaluation wrote it."""
    return float(json.loads((run / "eval_test" / "metrics.json").read_text())["accuracy"])


def one_seed(root: str, seed: int, pretrain_epochs: int, epochs: int) -> dict[str, float]:
    """Pretrain on task A, then fine-tune and train from scratch on task B (one thread)."""
    torch.set_num_threads(1)
    folder = Path(root)
    pretrained = folder / f"pretrain_s{seed}"
    train(
        parse_config(run_config(folder / "a/manifest.csv", pretrain_epochs, seed, None)), pretrained
    )
    result = {"pretrain": test_accuracy(pretrained)}
    for name, weights in (("finetuned", str(pretrained)), ("scratch", None)):
        run = folder / f"{name}_s{seed}"
        train(parse_config(run_config(folder / "b/manifest.csv", epochs, seed, weights)), run)
        result[name] = test_accuracy(run)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--target-videos", type=int, default=10, help="per class, task B")
    add_run_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        make_actions(root / "a", videos_per_class=20, seed=100)
        make_actions(root / "b", videos_per_class=args.target_videos, seed=200, scenes=True)
        started = time.perf_counter()
        jobs = [(str(root), seed, args.pretrain_epochs, args.epochs) for seed in args.seeds]
        results = run_parallel(one_seed, jobs, args.jobs)
        minutes = (time.perf_counter() - started) / 60
    print(
        f"resnet3d_18 width 0.25, 16-frame clips of 48 px; task A 4 x 20 videos "
        f"({args.pretrain_epochs} epochs), task B 4 x {args.target_videos} videos "
        f"({args.epochs} epochs); seeds {args.seeds}; {minutes:.1f} min"
    )
    print_per_seed(
        results,
        [
            ("pretrain", "task A test accuracy (pretraining)"),
            ("finetuned", "task B, fine-tuned from task A"),
            ("scratch", "task B, from scratch"),
        ],
    )


if __name__ == "__main__":
    main()
