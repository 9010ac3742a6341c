"""Cost of decoding untrusted videos in the sandbox rather than in the calling process.

``vidfer prepare`` runs every decode in :class:`vidfer.io.sandbox.Sandbox` workers (a crash, hang
or memory blow-up quarantines one video instead of killing the run). Before it, one worker
prepared in the calling process and several used a ``ProcessPoolExecutor``. This script prepares
the same batch of tiny videos (8x8 pixels, 3 frames: the per-video overhead dominates) into fresh
stores in four ways, alternating rounds so that load from other processes hits all alike, and
prints the best time of each and the ratios:

- in process: ``_prepare_task`` called in a loop (the old one-worker path);
- sandbox, 1 worker;
- process pool, ``--workers`` spawned workers (the old parallel path);
- sandbox, ``--workers`` workers.

The times include starting the workers, as ``vidfer prepare`` pays it once per call.

Usage:
    .venv/bin/python benchmarks/sandbox.py [--videos 400] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.data.prepare import _prepare_task
from vidfer.data.store import SourceIdentity
from vidfer.io.sandbox import Sandbox
from vidfer.io.writer import write_video


def tiny_videos(folder: Path, count: int) -> list[Path]:
    """``count`` distinct files: hard links to three real 8x8, 3-frame mp4 videos."""
    rng = np.random.default_rng(0)
    bases = []
    for i in range(3):
        bases.append(folder / f"base{i}.mp4")
        write_video(bases[-1], rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8), 10.0)
    paths = []
    for k in range(count):
        paths.append(folder / f"v{k:05d}.mp4")
        os.link(bases[k % 3], paths[-1])
    return paths


def in_process(tasks: list[tuple[Any, ...]], workers: int) -> None:
    del workers
    for task in tasks:
        _prepare_task(*task)


def process_pool(tasks: list[tuple[Any, ...]], workers: int) -> None:
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for future in [pool.submit(_prepare_task, *task) for task in tasks]:
            future.result()


def sandbox(tasks: list[tuple[Any, ...]], workers: int) -> None:
    limits = LimitsConfig()
    with Sandbox(
        _prepare_task, workers, timeout_s=limits.decode_timeout_s, memory_mb=limits.decode_memory_mb
    ) as box:
        for _ in box.map(tasks):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vidfer-sandbox-bench-"))
    try:
        paths = tiny_videos(work, args.videos)
        prep, limits = PrepareConfig(size=8), LimitsConfig()
        ways: list[tuple[str, Callable[[list[tuple[Any, ...]], int], None], int]] = [
            ("in process", in_process, 1),
            ("sandbox, 1 worker", sandbox, 1),
            (f"process pool, {args.workers} workers", process_pool, args.workers),
            (f"sandbox, {args.workers} workers", sandbox, args.workers),
        ]
        best = {name: float("inf") for name, _, _ in ways}
        for round_ in range(args.rounds):
            for name, run, workers in ways:
                store = work / f"store-{round_}-{name.replace(' ', '_').replace(',', '')}"
                tasks = [
                    (str(p), SourceIdentity.of(p), prep, limits, (None, None), str(store))
                    for p in paths
                ]
                started = time.perf_counter()
                run(tasks, workers)
                best[name] = min(best[name], time.perf_counter() - started)
                shutil.rmtree(store)
        print(f"{args.videos} videos of 8x8 pixels and 3 frames, best of {args.rounds} rounds")
        print(f"{'':32} {'seconds':>8} {'ms/video':>9} {'ratio':>6}")
        pairs = {"sandbox, 1 worker": "in process"}
        pairs[f"sandbox, {args.workers} workers"] = f"process pool, {args.workers} workers"
        for name, _, _ in ways:
            baseline = pairs.get(name)
            ratio = f"{best[name] / best[baseline]:.2f}" if baseline else ""
            per_video = 1000 * best[name] / args.videos
            print(f"{name:32} {best[name]:8.2f} {per_video:9.2f} {ratio:>6}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
