"""The sandbox's answers sent as pickles (before) vs :mod:`vidfer.io.wire` (JSON + raw bytes).

A worker process sends the parent ``--answers`` answers shaped like a prepared video's
(``(record dict, uint8 frames (T, S, S, 3))``) through a ``multiprocessing`` pipe, in alternating
rounds with each transport; the parent receives and touches every array. Prints the best time of
each, MB/s and the ratio.

Usage:
    .venv/bin/python benchmarks/sandbox_transport.py [--answers 40] [--frames 300] [--size 112]
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import get_context
from multiprocessing.connection import Connection

import numpy as np

from vidfer.io import wire


def answer(frames: int, size: int) -> tuple[str, tuple[dict[str, object], np.ndarray]]:
    """A worker's answer: a record and a video's stored frames."""
    video = np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    record = {"status": "ok", "frames": frames, "fps": 25.0, "reason": "", "faces": [0.9] * frames}
    return "ok", (record, video)


def worker(conn: Connection, how: str, answers: int, frames: int, size: int) -> None:
    """Send ``answers`` answers with one transport."""
    value = answer(frames, size)
    for _ in range(answers):
        if how == "pickle":
            conn.send(value)
        else:
            wire.send(conn, value)
    conn.close()


def one_round(how: str, answers: int, frames: int, size: int) -> float:
    """Seconds to receive ``answers`` answers from a started worker."""
    context = get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=worker, args=(child, how, answers, frames, size))
    process.start()
    child.close()
    parent.poll(60)  # the worker has started and sent its first answer
    start = time.perf_counter()
    total = 0
    for _ in range(answers):
        _, (_, video) = parent.recv() if how == "pickle" else wire.receive(parent)
        total += int(video[-1, -1, -1, -1])  # touch it
    seconds = time.perf_counter() - start
    process.join()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best = {"pickle": float("inf"), "wire": float("inf")}
    for _ in range(args.rounds):
        for how in best:
            best[how] = min(best[how], one_round(how, args.answers, args.frames, args.size))
    megabytes = args.answers * args.frames * args.size * args.size * 3 / 1e6
    shape = f"{args.frames}x{args.size}x{args.size}x3"
    print(f"{args.answers} answers of {shape} uint8 ({megabytes:.0f} MB)")
    for how, seconds in best.items():
        print(f"{how:>6}: {seconds:.3f} s  ({megabytes / seconds:.0f} MB/s)")
    print(f"wire / pickle time: {best['wire'] / best['pickle']:.2f}")


if __name__ == "__main__":
    main()
