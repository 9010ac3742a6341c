"""Cost of decoding ``vidfer predict``'s video in a sandboxed worker rather than in process.

``vidfer predict`` reads its video piece by piece; the pieces come from a
:class:`vidfer.io.sandbox.Sandbox` worker (:meth:`~vidfer.io.sandbox.Sandbox.stream`), pickled
through a pipe one at a time, the worker decoding the next while the caller uses the current one.
This script writes a synthetic video (``--seconds`` at 25 fps, 320x240, a moving square on noise),
then reads it to ``--size``-pixel frames in pieces of ``--piece`` frames, in alternating rounds:

- in process: ``decode_chunks`` and ``finish_frames`` in a loop (the former path);
- sandboxed: ``stream_video(...).pieces()`` (what ``vidfer predict`` runs; the worker's start is
  included, as predict pays it once per decoding pass).

With ``--work-ms N`` the reader also spends N ms of CPU time on each piece (a stand-in for scoring
it), which the sandboxed worker can overlap with decoding the next piece. It prints the best time
of each and the ratio.

Usage:
    .venv/bin/python benchmarks/predict_sandbox.py [--seconds 60] [--size 112] [--piece 256]
        [--rounds 3] [--work-ms 0]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.data.preprocess import finish_frames, video_limits
from vidfer.data.stream import stream_video
from vidfer.io.video import decode_chunks

FPS = 25


def write_video(path: Path, seconds: float) -> int:
    """A 320x240 H.264 video of a square crossing noise, written frame by frame."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    total = round(seconds * FPS)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(total):
            image = background.copy()
            x = (index * 3) % 280
            image[100:140, x : x + 40] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return total


def busy(seconds: float) -> None:
    """Spend ``seconds`` of CPU time in this process."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--piece", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-ms", type=float, default=0.0)
    args = parser.parse_args()
    prep, limits = PrepareConfig(size=args.size), LimitsConfig()
    work = Path(tempfile.mkdtemp(prefix="vidfer-predict-sandbox-bench-"))
    try:
        video = work / "long.mp4"
        frames = write_video(video, args.seconds)

        def in_process() -> int:
            kept = 0
            for piece in decode_chunks(
                video, args.piece, short_side=args.size, limits=video_limits(limits)
            ):
                kept += len(finish_frames(piece.frames, prep))
                busy(args.work_ms / 1000)
            return kept

        def sandboxed() -> int:
            kept = 0
            for _, piece in stream_video(video, prep, limits, args.piece).pieces():
                kept += len(piece)
                busy(args.work_ms / 1000)
            return kept

        ways: dict[str, Callable[[], int]] = {"in process": in_process, "sandboxed": sandboxed}
        best = {name: float("inf") for name in ways}
        for _ in range(args.rounds):
            for name, read in ways.items():
                started = time.perf_counter()
                assert read() == frames
                best[name] = min(best[name], time.perf_counter() - started)
        pieces = -(-frames // args.piece)
        print(
            f"{frames} frames of 320x240 read to {args.size} px in {pieces} pieces of "
            f"{args.piece}, {args.work_ms:g} ms of work per piece, best of {args.rounds} rounds"
        )
        print(f"{'':12} {'seconds':>8} {'ms/piece':>9} {'ratio':>6}")
        for name in ways:
            ratio = f"{best[name] / best['in process']:.2f}" if name != "in process" else ""
            print(f"{name:12} {best[name]:8.2f} {1000 * best[name] / pieces:9.1f} {ratio:>6}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
