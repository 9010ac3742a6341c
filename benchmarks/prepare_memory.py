"""Peak memory of ``vidfer prepare --faces``: a long HD face video against a short one.

Preparation streams (decode, faces and the store write go piece by piece), so its peak memory is
set by the piece size, not by the video's length. This script makes two 720p face videos whose
lengths differ ``--ratio`` times (carphone, looped forwards and backwards and upscaled into a
1280x720 frame), runs the real command, ``vidfer prepare MANIFEST --faces``, on each in a fresh
process, and prints the peak resident memory of the process tree (the command and its sandboxed
preparation worker) and whether the video was kept.

Peak memory is measured two ways: ``ru_maxrss`` of the command from ``os.wait4`` (the largest
single process of the tree, the worker included once it was waited for), and the largest sum of
``VmRSS`` over the tree, sampled from ``/proc`` every 0.1 s.

``--src`` runs the same command with another checkout's sources (e.g. the whole-video
preparation of an older commit) for a side-by-side comparison.

Run it (defaults: 60 s against 600 s, 25 frames/s, faces in every frame)::

    .venv/bin/python benchmarks/prepare_memory.py [--short-s 60] [--ratio 10] [--fps 25]
        [--prepare-fps F] [--src OTHER/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np

from vidfer.assets import asset_path, fetch_assets
from vidfer.io.video import decode

WIDTH, HEIGHT = 1280, 720


def write_face_video(path: Path, seconds: float, fps: float) -> int:
    """Carphone's 120 frames played forwards and backwards, upscaled to 720 rows and centred in a
    1280x720 frame, encoded frame by frame (memory holds one frame). Returns the frame count."""
    source = decode(asset_path("carphone")).frames  # (120, 144, 176, 3)
    loop = np.concatenate([source, source[::-1]])  # (240, 144, 176, 3), no jump at the ends
    scaled_width = round(source.shape[2] * HEIGHT / source.shape[1])
    left = (WIDTH - scaled_width) // 2
    total = round(seconds * fps)
    canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for t in range(total):
            frame = cv2.resize(loop[t % len(loop)], (scaled_width, HEIGHT), cv2.INTER_LINEAR)
            canvas[:, left : left + scaled_width] = frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return total


def _tree(root: int) -> list[int]:
    """``root`` and every living descendant."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(parents.get(pid, []))
    return pids


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(manifest: Path, store: Path, src: Path | None, fps: float | None) -> dict[str, float]:
    """Run ``vidfer prepare --faces`` in a fresh process; its peak memory (MiB) and seconds."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    command = [sys.executable, "-m", "vidfer", "prepare", str(manifest), "--faces"]
    command += ["--store", str(store), "--workers", "1"]
    command += [] if fps is None else ["--fps", str(fps)]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, sum(_rss_kib(pid) for pid in _tree(process.pid)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    done.set()
    sampler.join()
    if status != 0:
        raise SystemExit(f"vidfer prepare failed with status {status}")
    return {
        "maxrss_mib": usage.ru_maxrss / 1024,
        "tree_mib": peak_tree / 1024,
        "seconds": time.perf_counter() - start,
    }


def outcome(store: Path) -> tuple[str, int]:
    """The status and stored frame count of the store's one video."""
    [record] = [
        json.loads(path.read_text())
        for path in store.glob("*/*.json")
        if path.name != "prepare.json"
    ]
    return record["status"], (record["shape"] or [0])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short-s", type=float, default=60.0, help="the short video's length")
    parser.add_argument("--ratio", type=float, default=10.0, help="long length / short length")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the videos")
    parser.add_argument(
        "--prepare-fps",
        type=float,
        default=None,
        help="vidfer prepare --fps: keep (and detect faces in) fewer frames; every frame decoded",
    )
    parser.add_argument("--src", type=Path, default=None, help="another checkout's src folder")
    args = parser.parse_args()
    fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, seconds in (("short", args.short_s), ("long", args.short_s * args.ratio)):
            root = Path(tmp) / name
            root.mkdir()
            frames = write_face_video(root / "face.mp4", seconds, args.fps)
            (root / "manifest.csv").write_text("path,label\nface.mp4,talk\n")
            numbers = measure(root / "manifest.csv", root / "store", args.src, args.prepare_fps)
            status, stored = outcome(root / "store")
            results[name] = numbers
            print(
                f"{name:>5}: {seconds:6.0f} s, {frames} frames of {WIDTH}x{HEIGHT}: "
                f"{status} ({stored} stored), peak RSS {numbers['maxrss_mib']:.0f} MiB "
                f"(largest process), {numbers['tree_mib']:.0f} MiB (tree, sampled), "
                f"{numbers['seconds']:.0f} s"
            )
    for key, what in (("maxrss_mib", "largest process"), ("tree_mib", "process tree")):
        ratio = results["long"][key] / results["short"][key]
        print(f"peak RSS long / short ({what}): {ratio:.2f}x")


if __name__ == "__main__":
    main()
