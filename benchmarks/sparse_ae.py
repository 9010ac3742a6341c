"""Baccouche et al.'s sparse auto-encoder + BLSTM on the synthetic ``actions`` set.

For every seed: a new ``actions`` set (4 classes that differ only in motion), then
``configs/sparse_ae_actions_cpu.yaml`` through :func:`vidfer.pipelines.train` (the code
path of ``vidfer train``): the auto-encoder on motion-selected patches of the training videos,
then the BLSTM over the feature sequences, early-stopped on the validation loss. Prints test
accuracy mean +- standard error over the seeds, and the mean number of active code units per
patch of the trained (fixed-gain) auto-encoder over every grid patch of the training videos,
against the paper's bound N / 8.

Control: the same BLSTM, trained the same way, on the raw pixels of the same grid of patches
(the same crops, pooled over the grid the same way; no auto-encoder): what the sequence
classifier makes of these videos without learned features.

Run: .venv/bin/python benchmarks/sparse_ae.py [--seeds 0 1 2] [--videos-per-class 20] [--jobs 2]
     [--set sparse_ae.codes=128 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import add_run_arguments, print_per_seed, run_parallel
from vidfer.config import RunConfig, load_config
from vidfer.data.prepared import load_dataset
from vidfer.data.synth import make_actions
from vidfer.features.sparse_codes import block_grid
from vidfer.models.frame_heads import Standardised
from vidfer.models.framewise_blstm import FramewiseBLSTM
from vidfer.pipelines import train
from vidfer.pipelines.frames import head_optimizer
from vidfer.pipelines.sparse_ae import pool_grid
from vidfer.training.sequences import (
    LabelledSequence,
    SequenceTraining,
    fit_sequences,
    score_sequences,
)

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "sparse_ae_actions_cpu.yaml"


def raw_pixel_control(config: RunConfig, folder: Path) -> float:
    """Test accuracy of the run's BLSTM set-up on the raw grid patches instead of codes."""
    settings = config.sparse_ae
    assert settings is not None
    data = load_dataset(config.data)

    def sequences(split: str) -> list[LabelledSequence]:
        out = []
        for item in data.split(split):
            grid = block_grid(data.store.frames(item.key), settings)  # (S, G, D)
            steps = pool_grid(grid, settings.pool)  # -> (S, G*D) or (S, D)
            out.append(LabelledSequence(item.row.video_id, item.row.label_index, steps))
        return out

    train_set, val_set, test_set = (sequences(name) for name in ("train", "val", "test"))
    dim = train_set[0].features.shape[1]
    head = Standardised(FramewiseBLSTM(dim, len(data.manifest.classes), settings.hidden), dim)
    head.fit(np.concatenate([s.features for s in train_set]))
    training = SequenceTraining.of(config.train, config.seed)
    device = torch.device("cpu")
    folder.mkdir(parents=True, exist_ok=True)
    optimizer = head_optimizer(config, head)
    fit_sequences(head, optimizer, train_set, val_set, training, folder, {}, device)
    return score_sequences(head, test_set, device).accuracy


def one_seed(seed: int, videos_per_class: int, overrides: list[str], out: str) -> dict[str, Any]:
    """Generate one dataset, train on it; test accuracy and the sparsity report."""
    torch.set_num_threads(1)
    root = Path(out) / f"seed{seed}"
    manifest = make_actions(root / "actions", videos_per_class=videos_per_class, seed=seed)
    config = load_config(
        CONFIG,
        [f"seed={seed}", f"data.manifest={manifest}", "data.workers=1", *overrides],
    )
    result = train(config, root / "run")
    run = result.run.folder
    sparsity = json.loads((run / "sparsity.json").read_text())
    return {
        "accuracy": json.loads((run / "eval_test" / "metrics.json").read_text())["accuracy"],
        "control": raw_pixel_control(config, root / "raw_control"),
        "active": sparsity["video_patches"]["mean_active"],
        "active_training": sparsity["training_patches"]["mean_active"],
        "codes": sparsity["codes"],
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
    codes = results[0]["codes"]
    print(
        f"actions: 4 classes (chance 0.25), {args.videos_per_class} videos per class, "
        f"{len(args.seeds)} seeds (one dataset each); {CONFIG.name} {' '.join(args.set)}"
    )
    print_per_seed(
        results,
        [
            ("accuracy", "test accuracy"),
            ("control", "test accuracy, same BLSTM on raw gray pixels"),
            ("active", f"active units / video patch (N = {codes}, N/8 = {codes / 8:g})"),
            ("active_training", "active units / training patch"),
        ],
    )


if __name__ == "__main__":
    main()
