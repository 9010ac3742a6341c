"""Kahou et al.'s activity modality on the synthetic ``actions`` set, and its place in a fusion.

For every seed: a new ``actions`` set (4 classes that differ only in motion), then
``configs/activity_actions_cpu.yaml`` through :func:`vidfer.pipelines.train` (the code
path of ``vidfer train``): the synchrony auto-encoder on moving 16x16x10 blocks, the bag of words
of every video's moving blocks, the RBF SVMs. Prints test accuracy mean +- standard error over
the seeds, with a control: the same bag of words and SVMs over the amplitudes of an untrained
(randomly initialised) auto-encoder, which tells what the learning adds.

Run: .venv/bin/python benchmarks/activity.py [--seeds 0 1 2] [--videos-per-class 20] [--jobs 2]
     [--set activity.words=50 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from common import add_run_arguments, print_per_seed, run_parallel
from vidfer.config import load_config
from vidfer.data.synth import make_actions
from vidfer.pipelines import train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "activity_actions_cpu.yaml"


def _test_accuracy(run: Path) -> float:
    return float(json.loads((run / "eval_test" / "metrics.json").read_text())["accuracy"])


def one_seed(seed: int, videos_per_class: int, overrides: list[str], out: str) -> dict[str, Any]:
    """Generate one dataset; train the modality on it, and the untrained-codes control."""
    torch.set_num_threads(1)
    root = Path(out) / f"seed{seed}"
    manifest = make_actions(root / "actions", videos_per_class=videos_per_class, seed=seed)
    common = [f"seed={seed}", f"data.manifest={manifest}", "data.workers=1", *overrides]
    learned = train(load_config(CONFIG, common), root / "run").run.folder
    # One epoch at a learning rate of ~0 leaves the filters at their random initial values
    # (Adam's steps are lr-sized whatever the gradient); whitening and the rest are unchanged.
    control = [*common, "activity.lr=1e-12", "activity.epochs=1"]
    untrained = train(load_config(CONFIG, control), root / "control")
    lines = [json.loads(line) for line in (learned / "metrics.jsonl").read_text().splitlines()]
    return {
        "accuracy": _test_accuracy(learned),
        "control": _test_accuracy(untrained.run.folder),
        "seconds": sum(line.get("seconds", 0.0) for line in lines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--videos-per-class", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], help="config override")
    add_run_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        jobs = [(seed, args.videos_per_class, args.set, str(out)) for seed in args.seeds]
        results = run_parallel(one_seed, jobs, args.jobs)
    print(
        f"actions: 4 classes (chance 0.25), {args.videos_per_class} videos per class, "
        f"{len(args.seeds)} seeds (one dataset each); {CONFIG.name} {' '.join(args.set)}"
    )
    print_per_seed(
        results,
        [
            ("accuracy", "test accuracy, learned synchrony codes"),
            ("control", "test accuracy, untrained (random) filters"),
            ("seconds", "seconds to learn codes + words + SVMs"),
        ],
    )


if __name__ == "__main__":
    main()
