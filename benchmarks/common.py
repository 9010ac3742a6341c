"""Helpers shared by the training benchmarks: statistics and parallel runs."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return float(array.mean()), 0.0
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(len(array)))


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
