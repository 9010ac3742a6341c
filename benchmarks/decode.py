"""PyAV vs OpenCV: full decoding and random 16-frame clip access on the sample videos.

For each sample video of ``vidfer assets`` it times, side by side in one run:

- **full decode** to RGB ``uint8`` arrays: PyAV (vidfer's :func:`vidfer.io.video.decode`, colour
  conversion in swscale) and OpenCV (``cv2.VideoCapture.read`` + ``cvtColor`` BGR to RGB);
- **random clip access**: ``--clips`` clips of 16 consecutive frames at random starts, each read
  by seeking: PyAV seeks to the keyframe before the clip and decodes forward to it, OpenCV sets
  ``CAP_PROP_POS_FRAMES``; and the same clips sliced from vidfer's prepared store (the frames
  decoded once into a memory-mapped ``.npy``), which is what training reads.

Each time is the best of ``--repeats``. Every clip read by seeking is checked against the same
frames of that library's full decode (``exact`` in the table), since a seek that lands on the
wrong frame would be fast and useless.

Usage:
    .venv/bin/python benchmarks/decode.py [--videos carphone bikes bigbuckbunny] [--clips 20]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import av
import cv2
import numpy as np

from vidfer.assets import asset_path, fetch_assets
from vidfer.io.video import decode

CLIP = 16
T = TypeVar("T")


def best(run: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Best wall time of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result  # type: ignore[return-value]


def opencv_decode(path: Path) -> np.ndarray:
    """Every frame, RGB ``(T, H, W, 3)``, with OpenCV."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def pyav_clips(path: Path, starts: list[int]) -> list[np.ndarray]:
    """16-frame clips at ``starts`` by seeking with PyAV (keyframe before, then decode forward)."""
    clips = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = stream.start_time or 0
        step = 1 / (float(stream.average_rate) * float(stream.time_base))  # pts per frame
        for start in starts:
            container.seek(int(first + start * step), stream=stream, backward=True)
            frames = []
            for frame in container.decode(stream):
                assert frame.pts is not None
                index = round((frame.pts - first) / step)
                if index >= start:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == CLIP:
                    break
            clips.append(np.stack(frames))
    return clips


def opencv_clips(path: Path, starts: list[int]) -> list[np.ndarray]:
    """16-frame clips at ``starts`` by seeking with OpenCV's ``CAP_PROP_POS_FRAMES``."""
    capture = cv2.VideoCapture(str(path))
    clips = []
    for start in starts:
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(CLIP)]
        clips.append(np.stack(frames))
    capture.release()
    return clips


def exact(clips: list[np.ndarray], whole: np.ndarray, starts: list[int]) -> bool:
    return all(
        np.array_equal(clip, whole[start : start + CLIP])
        for clip, start in zip(clips, starts, strict=True)
    )


Row = tuple[str, str, str, float, float, object]


def measure(
    name: str, clips: int, repeats: int, rng: np.random.Generator, folder: Path
) -> list[Row]:
    """The table rows of one sample video."""
    path = asset_path(name)
    pyav_s, video = best(lambda: decode(path), repeats)
    whole = video.frames
    opencv_s, cv_whole = best(lambda: opencv_decode(path), repeats)
    starts = rng.integers(0, len(whole) - CLIP + 1, size=clips).tolist()
    seek_av_s, av_clips = best(lambda: pyav_clips(path, starts), repeats)
    seek_cv_s, cv_clips = best(lambda: opencv_clips(path, starts), repeats)
    stored = folder / f"{name}.npy"
    np.save(stored, whole)
    memmap = np.load(stored, mmap_mode="r")
    store_s, store_clips = best(lambda: [np.array(memmap[s : s + CLIP]) for s in starts], repeats)
    height, width = whole.shape[1:3]
    label = f"{name} {width}x{height} {len(whole)}f"
    task = f"{clips} random clips"
    return [
        (label, "full decode", "PyAV", len(whole) / pyav_s, 1.0, "-"),
        (label, "full decode", "OpenCV", len(cv_whole) / opencv_s, pyav_s / opencv_s, "-"),
        (label, task, "PyAV seek", clips / seek_av_s, 1.0, exact(av_clips, whole, starts)),
        (
            label,
            task,
            "OpenCV seek",
            clips / seek_cv_s,
            seek_av_s / seek_cv_s,
            exact(cv_clips, cv_whole, starts),
        ),
        (
            label,
            task,
            "prepared store",
            clips / store_s,
            seek_av_s / store_s,
            exact(store_clips, whole, starts),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="+", default=["carphone", "bikes", "bigbuckbunny"])
    parser.add_argument("--clips", type=int, default=20, help="random clips per video")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    fetch_assets(args.videos)
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="vidfer_decode_") as folder:
        for name in args.videos:
            rows += measure(name, args.clips, args.repeats, rng, Path(folder))
    print(
        f"best of {args.repeats}, library default threading, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'video':<28} {'task':<17} {'reader':<15} {'per s':>10} {'x PyAV':>8} exact")
    for label, task, reader, rate, ratio, same in rows:
        unit = "frames" if task == "full decode" else "clips"
        print(f"{label:<28} {task:<17} {reader:<15} {rate:10.1f} {ratio:8.2f} {same} ({unit})")


if __name__ == "__main__":
    main()
