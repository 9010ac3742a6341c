"""Is motion used? A temporally dense 3D ResNet-18 on 16-frame clips vs the same network on
1-frame clips, on the synthetic ``actions`` set whose classes differ only in motion.

Prints the test accuracy of both (whole-video evaluation) next to chance. The 16-frame model is
expected to reach >= 90 %, the 1-frame model to stay near chance (25 % for 4 classes).

Run: .venv/bin/python benchmarks/motion.py [--videos-per-class 30] [--epochs 40] [--seeds 0 1]
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
import yaml

from vidfer.config import load_config
from vidfer.data.synth import make_actions
from vidfer.pipelines import train


def config(manifest: Path, clip_len: int, epochs: int, seed: int) -> dict[str, Any]:
    """A run config; the 1-frame variant is also evaluated on 1-frame windows."""
    eval_section = {"mode": "dense"} if clip_len > 1 else {"mode": "windows", "clip_len": 1}
    return {
        "seed": seed,
        "data": {"manifest": str(manifest), "prepare": {"size": 48}, "workers": 2},
        "sampler": {"name": "uniform", "clip_len": clip_len},
        "transforms": {"size": 48, "crop_scale": [0.8, 1.0], "flip": 0.0},
        "model": {"name": "resnet3d_18", "params": {"width": 0.25, "temporal_stride": 1}},
        "optim": {"name": "adamw", "lr": 0.0003, "weight_decay": 0.0001, "schedule": "cosine"},
        "train": {"epochs": epochs, "batch_size": 8},
        "eval": eval_section,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-per-class", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_actions(root / "actions", videos_per_class=args.videos_per_class, seed=0)
        rows = []
        for seed in args.seeds:
            for clip_len in (16, 1):
                path = root / f"c{clip_len}_s{seed}.yaml"
                path.write_text(yaml.safe_dump(config(manifest, clip_len, args.epochs, seed)))
                started = time.perf_counter()
                run = root / f"run_c{clip_len}_s{seed}"
                train(load_config(path), run)
                test = json.loads((run / "eval_test" / "metrics.json").read_text())
                rows.append(
                    (clip_len, seed, test["accuracy"], test["count"], time.perf_counter() - started)
                )
    print(f"actions: 4 classes (chance 0.25), {args.videos_per_class} videos per class")
    print(f"{'clip':>6} {'seed':>5} {'test accuracy':>14} {'videos':>7} {'seconds':>8}")
    for clip_len, seed, accuracy, count, seconds in rows:
        print(f"{clip_len:>6} {seed:>5} {accuracy:>14.3f} {count:>7} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
