"""Video classifiers over a still-image CNN's features (the analogue of Kahou et al.'s Table 1).

As in Kahou et al., the frame CNN is trained on static face images only, never on the videos:
here the FER2013 mini-Xception (vidfer asset ``fer_mini_xception``), unchanged. On the synthetic
``expressions`` set (4 FER classes; the expression shows in one onset-apex-offset window, the
other frames are a neutral face) it feeds:

* per-frame probability averaging (its FER2013 classes matched by name; nothing learned),
* k-bin average pooling (k = 15) of its pre-softmax outputs + RBF SVM (Kahou §2.3),
* mean and variance of its 128 pooled features after SSR + L2, + linear SVM (Xu),
* an IRNN over its features (200 ReLU units, identity recurrence, SGD lr 0.005, clipping 1.0,
  class at the last step; Kahou §2.2),
* the residual BiLSTM over its features (28 units, AdamW 1e-3), with Xu's last-step read-out
  and with the mean over the steps.

SVM hyper-parameters are chosen on the validation split; the recurrent models stop early on
the validation loss. Each seed is a different generated dataset (and training seed). Prints
test accuracy mean +- standard error over the seeds.

Run: .venv/bin/python benchmarks/frame_models.py [--seeds 0 1 2] [--videos-per-class 20]
     [--epochs 60] [--jobs 2]
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
from vidfer.config import parse_config
from vidfer.data.synth import make_expressions
from vidfer.pipelines import train

FEATURES = {"cnn": "mini_xception", "layer": "features"}
LOGITS = {"cnn": "mini_xception", "layer": "logits"}
ADAMW = {"name": "adamw", "lr": 0.001, "weight_decay": 0.0001}

# Row label -> the ``frames`` section (and optimiser) of its pipeline.
PIPELINES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "per-frame averaging": ({"extractors": [LOGITS], "classifier": {"name": "average"}}, ADAMW),
    "k-bin (15) + RBF SVM": (
        {"extractors": [LOGITS], "aggregate": "kbin", "classifier": {"name": "rbf_svm"}},
        ADAMW,
    ),
    "mean/var + linear SVM": (
        {
            "extractors": [FEATURES],
            "normalise": "ssr_l2",
            "aggregate": "mean_var",
            "classifier": {"name": "linear_svm"},
        },
        ADAMW,
    ),
    "IRNN": (
        {"extractors": [FEATURES], "classifier": {"name": "irnn", "params": {"hidden": 200}}},
        {"name": "sgd", "lr": 0.005, "momentum": 0.0, "weight_decay": 0.0},
    ),
    "BiLSTM (last step)": (
        {"extractors": [FEATURES], "classifier": {"name": "bilstm", "params": {"dropout": 0.5}}},
        ADAMW,
    ),
    "BiLSTM (mean of steps)": (
        {
            "extractors": [FEATURES],
            "classifier": {"name": "bilstm", "params": {"dropout": 0.5, "readout": "mean"}},
        },
        ADAMW,
    ),
}


def one_seed(seed: int, videos_per_class: int, epochs: int, out: str) -> dict[str, float]:
    """Generate one dataset and run every pipeline on it; test accuracy per pipeline."""
    torch.set_num_threads(1)
    root = Path(out) / f"seed{seed}"
    manifest = make_expressions(
        root / "expressions", videos_per_class=videos_per_class, seed=seed, size=64
    )
    results = {}
    for number, (name, (frames, optim)) in enumerate(PIPELINES.items()):
        config = parse_config(
            {
                "seed": seed,
                "data": {"manifest": str(manifest), "prepare": {"size": 64}, "workers": 1},
                "frames": frames,
                "optim": optim,
                "train": {"epochs": epochs, "batch_size": 8, "clip_grad": 1.0, "patience": 20},
            }
        )
        run = root / f"run{number}"
        train(config, run)
        results[name] = json.loads((run / "eval_test" / "metrics.json").read_text())["accuracy"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--videos-per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    add_run_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        jobs = [(s, args.videos_per_class, args.epochs, str(out)) for s in args.seeds]
        results = run_parallel(one_seed, jobs, args.jobs)
    print(
        f"expressions: 4 classes (chance 0.25), {args.videos_per_class} videos per class, "
        f"{len(args.seeds)} seeds (one dataset each); frame CNN: FER2013 mini-Xception, frozen"
    )
    print_per_seed(results, [(name, name) for name in PIPELINES], digits=2)


if __name__ == "__main__":
    main()
