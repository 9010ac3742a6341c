"""Face pipeline throughput: decoding alone vs detection + tracking + alignment, side by side.

For each sample video (carphone: one face, 176x144; bikes: 640x272, mostly no face) it times, in
one run on this machine, PyAV decoding to RGB arrays and then :func:`vidfer.faces.process_faces`
with MTCNN and with the Haar cascade on the decoded frames, and prints frames per second and the
ratio of face-pipeline time to decode time. Each timing is the best of ``--repeats`` runs after a
warm-up call (the first MTCNN call pays one-off kernel set-up).

    .venv/bin/python benchmarks/faces.py [--videos carphone bikes] [--max-frames N] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import av
import numpy as np
import torch

from vidfer.assets import asset_path, fetch_assets
from vidfer.faces import FaceConfig, process_faces

T = TypeVar("T")


def decode(name: str, max_frames: int | None) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB frames of a sample video."""
    frames = []
    with av.open(str(asset_path(name))) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) == max_frames:
                break
    return np.stack(frames)


def best_time(run: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Best wall time of ``repeats`` calls, in seconds, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="+", default=["carphone", "bikes"])
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    fetch_assets(["mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", *args.videos])

    configs = {"mtcnn": FaceConfig(detector="mtcnn"), "haar": FaceConfig(detector="haar")}
    print(f"torch threads: {torch.get_num_threads()}")
    header = f"{'video':<10} {'frames':>6} {'size':>9} {'stage':<22} {'seconds':>8} {'fps':>8}"
    print(header + f" {'x decode':>9}")
    for name in args.videos:
        frames = decode(name, args.max_frames)
        size = f"{frames.shape[2]}x{frames.shape[1]}"
        decode_s, _ = best_time(partial(decode, name, args.max_frames), args.repeats)
        print(
            f"{name:<10} {len(frames):>6} {size:>9} {'decode (PyAV)':<22} "
            f"{decode_s:>8.2f} {len(frames) / decode_s:>8.1f} {1.0:>9.1f}"
        )
        for label, cfg in configs.items():
            process_faces(frames[:2], cfg)  # warm-up: builds the cached detector, sets up kernels
            seconds, result = best_time(partial(process_faces, frames, cfg), args.repeats)
            stage = f"detect+align ({label})"
            print(
                f"{name:<10} {len(frames):>6} {size:>9} {stage:<22} {seconds:>8.2f} "
                f"{len(frames) / seconds:>8.1f} {seconds / decode_s:>9.1f}   "
                f"face in {result.face_fraction:.0%} of frames: {result.status}"
            )


if __name__ == "__main__":
    main()
