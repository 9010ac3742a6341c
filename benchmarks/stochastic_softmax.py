"""Temporal stochastic softmax vs uniform clip sampling vs REINFORCE (the thesis's Table 3.1).

On the synthetic ``expressions`` set (the expression's apex fills 15-25 % of each video, the rest
is a neutral face), the inflated FER2013 mini-Xception (``i3d_mini_xception``: real FER weights,
temporal kernel 3, temporally dense) is fine-tuned with one 8-frame 48x48 clip per video and epoch,
for every sampling method and seed. (A 3D ResNet-18 from scratch does not leave chance level
within the epochs a CPU benchmark affords on this set; the FER-pretrained 3D model does.)

- ``uniform``: uniform clip sampling, average pooling at test time (the usual baseline; the
  same runs are also tested with softmax pooling ``gamma_p = 1``, to separate the effect of the
  training-clip sampling from that of the test pooling, as the thesis's Table 3.3 does);
- ``softmax g=0|1|10``: stochastic softmax with ``gamma_s = gamma_p = g`` (3 warm-up epochs,
  5 exploration epochs, then weighted sampling; g=0 is uniform plus the deterministic exploration);
- ``reinforce g=1``: REINFORCE estimation of the sampling distribution (eq. 3.5), ``gamma_p`` = 1.

Every run has the same budget of epochs (default 12: 3 warm-up, 5 exploration, 4 weighted). It
prints, per method, the test accuracy mean +- standard error over the seeds, the epochs to
converge (the epoch of the best validation loss), and the mean Spearman correlation between each
training video's learned per-position values and the ground-truth intensity of the clip at that
position. Then, alone in this process, alternating short runs of uniform and stochastic softmax
sampling (scoring clean clips at every epoch) time the training per epoch (validation excluded)
and print the ratio.

Run: .venv/bin/python benchmarks/stochastic_softmax.py [--seeds 0 1 2 3 4] [--epochs 12]
     [--videos-per-class 40] [--jobs 2] [--timing-repeats 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from common import add_run_arguments, mean_se, mini_xception_transforms, run_parallel
from vidfer.config import PoolingConfig, RunConfig, parse_config
from vidfer.data.prepared import load_dataset
from vidfer.data.synth import make_expressions
from vidfer.evaluation.evaluate import ClipEvaluator
from vidfer.io.checkpoint import load_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models.trained import load_run_model
from vidfer.pipelines import train

SIZE = 48
CLIP = 8
METHODS: dict[str, dict[str, Any]] = {
    "uniform": {"sampler": {"name": "uniform"}, "gamma_p": 0.0},
    "softmax g=0": {"sampler": {"name": "stochastic_softmax", "params": {"gamma": 0.0}}},
    "softmax g=1": {"sampler": {"name": "stochastic_softmax", "params": {"gamma": 1.0}}},
    "softmax g=10": {"sampler": {"name": "stochastic_softmax", "params": {"gamma": 10.0}}},
    "reinforce g=1": {"sampler": {"name": "reinforce", "params": {"gamma": 1.0}}},
    # Timing only: every epoch scores its clean clips (no warm-up or exploration).
    "softmax timing": {
        "sampler": {"name": "stochastic_softmax", "params": {"warmup": 0, "explore": 0}},
    },
}


def run_config(manifest: Path, method: str, seed: int, epochs: int) -> RunConfig:
    """The config of one run: same data, model and optimiser for every method."""
    spec = METHODS[method]
    sampler = {"clip_len": CLIP, **spec["sampler"]}
    gamma_p = spec.get("gamma_p", sampler.get("params", {}).get("gamma", 0.0))
    return parse_config(
        {
            "seed": seed,
            "data": {"manifest": str(manifest), "prepare": {"size": SIZE}, "workers": 2},
            "sampler": sampler,
            "transforms": mini_xception_transforms(SIZE),
            "model": {"name": "i3d_mini_xception", "params": {"time_kernel": 3}},
            "optim": {"name": "adamw", "lr": 0.001, "weight_decay": 0.0001, "schedule": "none"},
            "train": {"epochs": epochs, "batch_size": 8},
            "eval": {"mode": "dense", "pooling": {"name": "softmax", "params": {"gamma": gamma_p}}},
        }
    )


@dataclass(frozen=True)
class Outcome:
    """What one run measured."""

    method: str
    seed: int
    accuracy: float
    converge_epoch: int
    train_seconds: list[float]
    spearman: float | None
    accuracy_gamma_p1: float | None = None  # uniform only: tested with softmax pooling, gamma 1


def accuracy_with_pooling(config: RunConfig, run: Path, gamma_p: float) -> float:
    """Test accuracy of a trained run under softmax test pooling with ``gamma_p``."""
    pooling = {"name": "softmax", "params": {"gamma": gamma_p}}
    chosen = config.model_copy(
        update={"eval": config.eval.model_copy(update={"pooling": PoolingConfig(**pooling)})}
    )
    data = load_dataset(config.data)
    model, trained = load_run_model(RunDir(run), "cpu")
    device = torch.device("cpu")
    return (
        ClipEvaluator.of(model, trained, chosen, device)
        .evaluate(data.split("test"), data.store)
        .accuracy
    )


def intensity_spearman(config: RunConfig, run: Path) -> float | None:
    """Mean over training videos of Spearman(learned values, clip intensity), or None."""
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    if "values" not in saved["sampler"]:
        return None
    items = load_dataset(config.data).split("train")
    correlations = []
    for item, values in zip(items, saved["sampler"]["values"], strict=True):
        labels = np.asarray(item.frame_labels)
        positions = len(values)
        # Mean intensity of the clip at each start: (N, CLIP) frame indices -> (N,).
        clips = np.arange(positions)[:, None] + np.arange(CLIP)[None, :]
        truth = labels[np.clip(clips, 0, len(labels) - 1)].mean(axis=1)
        learned = values.numpy()
        if positions > 2 and np.ptp(truth) > 0 and np.ptp(learned) > 0:
            correlations.append(float(spearmanr(learned, truth).statistic))
    return float(np.mean(correlations)) if correlations else None


def one_run(manifest: str, method: str, seed: int, epochs: int, out: str) -> Outcome:
    """Train and evaluate one (method, seed); runs in a worker process with one thread."""
    torch.set_num_threads(1)
    config = run_config(Path(manifest), method, seed, epochs)
    run = Path(out) / f"{method.replace(' ', '_').replace('=', '')}_s{seed}"
    result = train(config, run)
    test = json.loads((run / "eval_test" / "metrics.json").read_text())
    best = min(result.metrics, key=lambda line: line["val_loss"])
    return Outcome(
        method=method,
        seed=seed,
        accuracy=float(test["accuracy"]),
        converge_epoch=int(best["epoch"]),
        train_seconds=[float(line["train_seconds"]) for line in result.metrics],
        spearman=intensity_spearman(config, run),
        accuracy_gamma_p1=accuracy_with_pooling(config, run, 1.0) if method == "uniform" else None,
    )


def time_epochs(manifest: Path, repeats: int, epochs: int, out: Path) -> dict[str, list[float]]:
    """Training seconds per epoch of uniform vs stochastic softmax sampling, side by side.

    Runs alternate (uniform, softmax, uniform, ...) in this process alone, so that machine load
    hits both alike; the softmax runs skip warm-up and exploration, so every epoch pays the clean
    scoring pass.
    """
    times: dict[str, list[float]] = {"uniform": [], "softmax": []}
    for repeat in range(repeats):
        for name, method in (("uniform", "uniform"), ("softmax", "softmax timing")):
            config = run_config(manifest, method, 0, epochs)
            result = train(config, out / f"timing_{name}_{repeat}")
            times[name] += [float(line["train_seconds"]) for line in result.metrics]
    return times


def report(outcomes: Sequence[Outcome], methods: Sequence[str], epochs: int) -> None:
    """Print the Table-3.1-like summary, then every run as a JSON line."""
    header = f"{'method':<14} {'test accuracy':>17} {'epochs to converge':>19} {'spearman':>9}"
    print(header)
    print("-" * len(header))
    for method in methods:
        runs = [o for o in outcomes if o.method == method]
        mean, se = mean_se([o.accuracy for o in runs])
        converge = np.mean([o.converge_epoch for o in runs])
        rhos = [o.spearman for o in runs if o.spearman is not None]
        rho = f"{np.mean(rhos):.3f}" if rhos else "-"
        print(f"{method:<14} {mean:>8.3f} +- {se:.3f} {converge:>19.1f} {rho:>9}")
        decoupled = [o.accuracy_gamma_p1 for o in runs if o.accuracy_gamma_p1 is not None]
        if decoupled:
            mean, se = mean_se(decoupled)
            print(f"{'  test g_p=1':<14} {mean:>8.3f} +- {se:.3f} {'(same runs)':>19} {'-':>9}")
    seeds = len({o.seed for o in outcomes})
    print(f"({seeds} seeds, {epochs} epochs; epochs to converge: epoch of the best val loss)")
    for o in outcomes:
        print(json.dumps(o.__dict__))


def report_timing(times: dict[str, list[float]]) -> None:
    """Print the training time per epoch of both samplers and their ratio."""
    uniform, softmax = np.median(times["uniform"]), np.median(times["softmax"])
    print(
        f"training seconds per epoch (median of {len(times['uniform'])} epochs each, "
        f"alternating runs): uniform {uniform:.2f}, stochastic softmax {softmax:.2f}, "
        f"ratio {softmax / uniform:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--videos-per-class", type=int, default=40)
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS)[:-1], choices=list(METHODS)[:-1]
    )
    parser.add_argument("--timing-repeats", type=int, default=3, help="0: skip the timing")
    add_run_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        manifest = make_expressions(
            out / "expressions", videos_per_class=args.videos_per_class, seed=0, size=SIZE
        )
        load_dataset(run_config(manifest, "uniform", 0, 1).data)  # prepare once, up front
        # Interleave the methods within each seed so that load changes hit all of them.
        jobs = [(m, s) for s in args.seeds for m in args.methods]
        outcomes = run_parallel(
            one_run, [(str(manifest), m, s, args.epochs, str(out)) for m, s in jobs], args.jobs
        )
        times = time_epochs(manifest, args.timing_repeats, 2, out) if args.timing_repeats else {}
    print(
        f"expressions: 4 classes, {args.videos_per_class} videos per class, {SIZE}x{SIZE}, "
        f"{CLIP}-frame clips, i3d_mini_xception (FER2013 weights), test pooling gamma_p = gamma_s"
    )
    report(outcomes, args.methods, args.epochs)
    if times:
        report_timing(times)


if __name__ == "__main__":
    main()
