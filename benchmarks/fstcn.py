"""FstCN's ablation on the synthetic ``actions`` sets (the analogue of Sun et al.'s Table 2).

For every seed, the lower SCLs are first pre-trained with the auxiliary classifier on frames of
the training videos (§2.3; ``vidfer train-frames --model fstcn_scl``, ``--scl-epochs``), then a
small FstCN starting from them (``configs/fstcn_actions_cpu.yaml`` settings: width 0.125,
dropout 0.2 and AdamW, since the paper's SGD and dropout 0.5 left this narrow network on the
initial plateau for 30 epochs) is trained with only its SCL path (appearance), only its TCL
path (motion), and whole; each is tested on 5 evenly
spaced clip pairs x 9 crops with SCI fusion over the crops and max over the pairs. The whole
model is also tested with plain averaging of the views and the pairs. Prints test accuracy
mean +- standard error over the seeds.

``--data scenes`` (default; ``vidfer synth actions --scenes``): walk/jump x town/park, so each
path alone tops out at 0.5 and only the whole model can reach 1. ``--data motion``: the plain
actions, which differ only in motion, so the SCL path alone stays near chance (0.25).

Run: .venv/bin/python benchmarks/fstcn.py [--data scenes|motion] [--seeds 0 1 2] [--epochs 40]
     [--videos-per-class 20] [--scl-epochs 6] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from common import add_run_arguments, mean_se, run_parallel
from vidfer.config import RunConfig, parse_config
from vidfer.data.prepared import load_dataset
from vidfer.data.synth import make_actions
from vidfer.evaluation.evaluate import ClipEvaluator
from vidfer.io.run_folder import RunDir
from vidfer.models.trained import load_run_model
from vidfer.pipelines import train
from vidfer.training.frames import FrameTrainSettings, train_frames

PATHS = {"SCL path": "scl", "TCL path": "tcl", "FstCN": "both"}
WIDTH, SIZE = 0.125, 56


def run_config(
    manifest: Path, paths: str, seed: int, epochs: int, fusion: str, scl: str | None = None
) -> RunConfig:
    """The CPU FstCN config with one path choice and one test-time fusion."""
    clip_fusion = "max" if fusion == "sci" else "mean"
    raw: dict[str, Any] = {
        "seed": seed,
        "data": {"manifest": str(manifest), "prepare": {"size": 64}, "workers": 2},
        "sampler": {
            "name": "clip_pairs",
            "clip_len": 5,
            "stride": 3,
            "num_clips": 2,
            "params": {"offset": 3},
        },
        "transforms": {"size": SIZE, "crop_scale": [0.7, 1.0], "flip": 0.0},
        "model": {
            "name": "fstcn",
            "params": {
                "width": WIDTH,
                "clip_len": 5,
                "in_size": SIZE,
                "paths": paths,
                "dropout": 0.2,
                "scl_init": scl,
            },
        },
        "optim": {"name": "adamw", "lr": 0.001, "weight_decay": 0.0001},
        "train": {"epochs": epochs, "batch_size": 8},
        "eval": {
            "mode": "views",
            "views": {"clips": 5, "crops": 9, "flip": False, "view_fusion": fusion,
                      "clip_fusion": clip_fusion},
        },
    }  # fmt: skip
    return parse_config(raw)


def pretrain_scl(source: str, seed: int, epochs: int, out: str) -> str:
    """§2.3: the lower SCLs + auxiliary classifier trained on the training videos' frames."""
    torch.set_num_threads(1)
    folder = Path(out) / f"pretrained_scl_s{seed}"
    if (folder / "eval_test" / "metrics.json").exists():  # finished in an earlier run (--out)
        return str(folder)
    params = {"width": WIDTH, "input_size": SIZE}
    settings = FrameTrainSettings(
        model="fstcn_scl",
        params=params,
        epochs=epochs,
        seed=seed,
        patience=epochs,
        monitor="accuracy",
    )
    train_frames(source, folder, settings)
    return str(folder)


def one_run(
    manifest: str, name: str, seed: int, epochs: int, out: str, scl: str | None
) -> dict[str, float]:
    """Train one path choice; test accuracy with SCI fusion (and averaging for FstCN)."""
    torch.set_num_threads(1)
    config = run_config(Path(manifest), PATHS[name], seed, epochs, "sci", scl)
    run = Path(out) / f"{PATHS[name]}_s{seed}"
    train(config, run)
    data = load_dataset(config.data)
    model, pooling = load_run_model(RunDir(run), "cpu")
    device = torch.device("cpu")
    results = {}
    for fusion in ("sci", "mean") if name == "FstCN" else ("sci",):
        chosen = run_config(Path(manifest), PATHS[name], seed, epochs, fusion, scl)
        evaluator = ClipEvaluator.of(model, pooling, chosen, device)
        outcome = evaluator.evaluate(data.split("test"), data.store)
        results[fusion] = outcome.accuracy
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["scenes", "motion"], default="scenes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--videos-per-class", type=int, default=20)
    parser.add_argument(
        "--scl-epochs", type=int, default=6, help="SCL pre-training on frames (0: none)"
    )
    add_run_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        manifest = make_actions(
            out / args.data,
            videos_per_class=args.videos_per_class,
            seed=0,
            scenes=args.data == "scenes",
        )
        data = run_config(manifest, "both", 0, 1, "sci").data
        load_dataset(data)  # prepare once, up front
        source = out / "data.yaml"
        source.write_text(yaml.safe_dump({"data": json.loads(data.model_dump_json())}))
        scls: list[str | None] = [None] * len(args.seeds)
        if args.scl_epochs:
            pretrain = [(str(source), s, args.scl_epochs, str(out)) for s in args.seeds]
            scls = list(run_parallel(pretrain_scl, pretrain, args.jobs))
        jobs = [
            (str(manifest), name, s, args.epochs, str(out), scl)
            for s, scl in zip(args.seeds, scls, strict=True)
            for name in PATHS
        ]
        results = run_parallel(one_run, jobs, args.jobs)
    print(
        f"actions ({args.data}): 4 classes (chance 0.25), "
        f"{args.videos_per_class} videos per class, {args.epochs} epochs, "
        f"{len(args.seeds)} seeds; SCL pre-training on frames: {args.scl_epochs} epochs; "
        "test: 5 pairs x 9 crops"
    )
    rows = [(f"{name} (SCI + max)", name, "sci") for name in PATHS]
    rows.append(("FstCN (averaging)", "FstCN", "mean"))
    for label, name, fusion in rows:
        values = [r[fusion] for job, r in zip(jobs, results, strict=True) if job[1] == name]
        mean, se = mean_se(values)
        print(f"{label:<22} {mean:.3f} +- {se:.3f}")


if __name__ == "__main__":
    main()
