"""Frame folders vs the same frames as lossless videos: preparing them into the store.

It cuts ``--clips`` clips of ``--frames`` consecutive frames from the ``bikes`` (640x272) and
``carphone`` (176x144) sample videos and writes each clip three (or four) ways:

- a frame folder of PNG images (lossless, as CK+ and UNBC-McMaster are distributed);
- a frame folder of JPEG images (quality 95, as DFEW, FERV39k and MAFW are);
- a lossless video, ``libx264rgb`` with crf 0 in RGB (the frames exactly), Matroska;
- with ``--ffv1``, a lossless FFV1 video too.

Then it times, side by side in one run (the kinds alternate in every repeat, so that load from
other processes hits them alike; best and median of ``--repeats``):

- **prepare**: :func:`vidfer.data.prepare.prepare_rows` of every clip into a fresh store, in the
  sandboxed decoding worker(s) as ``vidfer prepare`` does (``--workers``, resized to ``--size``
  and centre-cropped), what the issue asks to be at least as fast;
- **decode**: :func:`vidfer.io.video.decode` of every clip in this process, resized to the same
  short side (the reading alone, without worker start-up or store writes).

It checks that the PNG folders and the lossless videos give exactly the same stored arrays, and
prints the ratios (video time / folder time: above 1 means the frame folders are faster).

Usage:
    .venv/bin/python benchmarks/frame_folders.py [--clips 16] [--frames 32] [--size 112]
        [--repeats 3] [--workers 1] [--ffv1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vidfer.assets import asset_path, fetch_assets
from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.data.manifest import parse_manifest
from vidfer.data.prepare import prepare_rows
from vidfer.io.video import decode
from vidfer.io.writer import write_video

FPS = 25.0


def clips(count: int, length: int) -> list[np.ndarray]:
    """``count`` clips ``uint8 (length, H, W, 3)`` of consecutive frames of the sample videos."""
    fetch_assets(["bikes", "carphone"])
    sources = [decode(asset_path(name)).frames for name in ("bikes", "carphone")]
    out = []
    for i in range(count):
        frames = sources[i % 2]
        start = (i * 37) % (len(frames) - length)
        out.append(frames[start : start + length])
    return out


def write_kinds(root: Path, frames: list[np.ndarray], ffv1: bool) -> dict[str, list[str]]:
    """Every clip in every kind under ``root``; kind -> paths relative to ``root``."""
    kinds: dict[str, list[str]] = {"png folder": [], "jpg folder": [], "libx264rgb video": []}
    if ffv1:
        kinds["ffv1 video"] = []
    for i, clip in enumerate(frames):
        for suffix, kind, options in (
            (".png", "png folder", []),
            (".jpg", "jpg folder", [cv2.IMWRITE_JPEG_QUALITY, 95]),
        ):
            folder = root / kind.split()[0] / f"clip{i}"
            folder.mkdir(parents=True)
            for t, frame in enumerate(clip):
                bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(folder / f"{t:05d}{suffix}"), bgr, options)
            kinds[kind].append(folder.relative_to(root).as_posix())
        video = root / "x264" / f"clip{i}.mkv"
        write_video(video, clip, FPS, codec="libx264rgb", crf=0, pix_fmt="rgb24")
        kinds["libx264rgb video"].append(video.relative_to(root).as_posix())
        if ffv1:
            video = root / "ffv1" / f"clip{i}.mkv"
            write_video(video, clip, FPS, codec="ffv1", crf=0, pix_fmt="bgr0")
            kinds["ffv1 video"].append(video.relative_to(root).as_posix())
    return kinds


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ffv1", action="store_true", help="also FFV1 lossless videos")
    args = parser.parse_args()

    frames = clips(args.clips, args.frames)
    prep = PrepareConfig(size=args.size)
    limits = LimitsConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kinds = write_kinds(root / "data", frames, args.ffv1)
        manifests = {
            kind: parse_manifest(
                "path,label\n" + "".join(f"{path},clip\n" for path in paths),
                source=root / f"{kind}.csv",
                root=root / "data",
            )
            for kind, paths in kinds.items()
        }
        sizes = {
            kind: sum(f.stat().st_size for p in paths for f in [root / "data" / p]
                      for f in (f.iterdir() if f.is_dir() else [f]))
            for kind, paths in kinds.items()
        }  # fmt: skip
        runs = 0

        def prepare(kind: str) -> None:
            nonlocal runs
            runs += 1
            prepare_rows(
                manifests[kind].rows,
                store_root=root / f"store{runs}",
                prep=prep,
                limits=limits,
                workers=args.workers,
                frame_folder_fps=FPS,
            )

        def read(kind: str) -> None:
            for row in manifests[kind].rows:
                decode(row.path, short_side=args.size, frame_folder_fps=FPS)

        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for kind in kinds:
                times.setdefault(("prepare", kind), []).append(timed(lambda k=kind: prepare(k)))
                times.setdefault(("decode", kind), []).append(timed(lambda k=kind: read(k)))

        stored = {}
        for kind in ("png folder", "libx264rgb video"):
            result = prepare_rows(
                manifests[kind].rows, store_root=root / "check", prep=prep, limits=limits,
                frame_folder_fps=FPS,
            )  # fmt: skip
            stored[kind] = [result.store.frames(r.source.key()) for r in result.records.values()]
        exact = all(
            np.array_equal(a, b)
            for a, b in zip(stored["png folder"], stored["libx264rgb video"], strict=True)
        )

    total = args.clips * args.frames
    print(
        f"{args.clips} clips x {args.frames} frames ({total} frames) of bikes 640x272 and "
        f"carphone 176x144, prepared to {args.size} px, {args.workers} worker(s), "
        f"best / median of {args.repeats}"
    )
    print(f"{'kind':<18} {'MB':>6}  {'prepare s':>10} {'median':>7}  {'decode s':>9} {'median':>7}")
    for kind in kinds:
        prep_times, read_times = times[("prepare", kind)], times[("decode", kind)]
        print(
            f"{kind:<18} {sizes[kind] / 1e6:6.1f}  {min(prep_times):10.2f} "
            f"{statistics.median(prep_times):7.2f}  {min(read_times):9.2f} "
            f"{statistics.median(read_times):7.2f}"
        )
    for folder in ("png folder", "jpg folder"):
        for video in [kind for kind in kinds if kind.endswith("video")]:
            for step in ("prepare", "decode"):
                ratio = min(times[(step, video)]) / min(times[(step, folder)])
                print(f"{step}: {video} time / {folder} time = {ratio:.2f}x (best times)")
    print(f"png folders and libx264rgb videos store the same arrays: {exact}")


if __name__ == "__main__":
    main()
