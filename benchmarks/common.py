"""Helpers shared by the training benchmarks: statistics and parallel runs."""

from __future__ import annotations

import argparse
import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return float(array.mean()), 0.0
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(len(array)))


def print_per_seed(
    results: Sequence[dict[str, float]], rows: Sequence[tuple[str, str]], digits: int = 3
) -> None:
    """One line per ``(key, name)`` of ``rows``: mean +- standard error, then every seed's value."""
    width = max(len(name) for _, name in rows) + 2
    for key, name in rows:
        values = [r[key] for r in results]
        mean, se = mean_se(values)
        per_seed = ", ".join(f"{v:.{digits}f}" for v in values)
        print(f"{name:<{width}} {mean:.3f} +- {se:.3f}   ({per_seed})")


def run_parallel(
    function: Callable[..., T], jobs: Sequence[tuple[Any, ...]], workers: int
) -> list[T]:
    """``function(*job)`` for every job in ``workers`` spawned processes, results in job order.

    ``function`` must be importable (defined at module level of the benchmark script).
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        return [future.result() for future in futures]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--jobs`` and ``--out``, the options every training benchmark has."""
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (1 thread each)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")


def mini_xception_transforms(size: int) -> dict[str, Any]:
    """Training augmentation for the FER2013 mini-Xception (its ``[-1, 1]`` normalisation comes
    with its weights: vidfer.models.contract.FER_INPUT)."""
    return {"size": size, "crop_scale": [0.8, 1.0], "flip": 0.5}
