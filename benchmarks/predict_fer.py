"""The whole ``vidfer predict`` command with the default FER model on a long face video.

The carphone sample (120 frames) is looped to ``--loops`` x 120 frames and written as an mp4.
Two real ``vidfer predict`` processes score it, alternating, start-up included:

- **keyframes**: the command as shipped (faces detected in full every ``faces.detect_every``
  frames, carried between by optical flow and O-Net);
- **every frame**: the same command with ``detect_every: 1`` (a full MTCNN detection on every
  frame, the front end before issue 22).

It prints each one's time and frames/s, their ratio, and whether they agree: the video label,
and the frames in which a face was found (from ``timeline.csv``). It also prints the time Python
spends importing the modules of the command's default-model path (``python -X importtime``,
summed, best of ``--repeats``): less sensitive to a shared machine's load than the whole
command, and the part of it that does not depend on the video.

Usage:
    .venv/bin/python benchmarks/predict_fer.py [--loops 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vidfer.assets import asset_path
from vidfer.io.video import decode
from vidfer.io.writer import write_video

EVERY_FRAME = """
import sys
from vidfer.config import PrepareConfig
import vidfer.predict.fer as fer
faces = dict(fer.FER_PREPARE.faces or {}, detect_every=1)
fer.FER_PREPARE = PrepareConfig(faces=faces)
from vidfer.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``vidfer`` with the default FER model detecting faces on every frame."""


def command(how: str, video: Path, out: Path) -> list[str]:
    """The command line of one variant."""
    args = ["predict", str(video), "--out", str(out)]
    if how == "keyframes":
        return [sys.executable, "-m", "vidfer", *args]
    return [sys.executable, "-c", EVERY_FRAME, *args]


IMPORTS = "import vidfer.cli, vidfer.predict.video, vidfer.faces.mtcnn"
"""What ``vidfer predict VIDEO`` imports with the default model."""


def import_seconds() -> float:
    """Seconds Python spends importing :data:`IMPORTS` in a fresh process (``-X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", IMPORTS],
        check=True,
        capture_output=True,
        text=True,
    )
    own = [
        int(line.split("|")[0].split(":")[1])  # "import time: self [us] | cumulative | name"
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.split("|")[0].split(":")[1].strip().isdigit()
    ]
    return sum(own) / 1e6


def face_frames(out: Path) -> list[int]:
    """The rows of ``timeline.csv`` with a face."""
    with (out / "timeline.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [i for i, row in enumerate(rows) if row["face"] == "ok"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    source = decode(asset_path("carphone"))
    frames = np.concatenate([source.frames] * args.loops)  # (loops * 120, H, W, 3)
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "carphone_looped.mp4"
        write_video(video, frames, source.info.fps)
        best = {"keyframes": float("inf"), "every frame": float("inf")}
        for repeat in range(args.repeats):
            for how in best:
                out = Path(folder) / f"{how.replace(' ', '_')}_{repeat}"
                start = time.perf_counter()
                subprocess.run(command(how, video, out), check=True, capture_output=True)
                best[how] = min(best[how], time.perf_counter() - start)
        imports = min(import_seconds() for _ in range(args.repeats))
        outs = {how: Path(folder) / f"{how.replace(' ', '_')}_0" for how in best}
        labels = {
            how: json.loads((o / "summary.json").read_text())["label"] for how, o in outs.items()
        }
        boxes = {
            how: np.loadtxt(o / "timeline.csv", delimiter=",", skiprows=1, usecols=(3, 4, 5, 6))
            for how, o in outs.items()
        }
        found = {how: face_frames(o) for how, o in outs.items()}
    print(
        f"{len(frames)} frames of {source.info.width}x{source.info.height}, best of {args.repeats}"
    )
    for how, seconds in best.items():
        print(f"{how:>12}: {seconds:6.1f} s  {len(frames) / seconds:6.1f} frames/s (whole command)")
    print(f"every frame / keyframes: {best['every frame'] / best['keyframes']:.2f}x")
    print(f"imports of the default-model path (python -X importtime, summed): {imports:.2f} s")
    print(f"load average {os.getloadavg()}")
    print(f"same label: {labels['keyframes'] == labels['every frame']} ({labels['keyframes']})")
    same = found["keyframes"] == found["every frame"]
    print(f"face found in the same frames: {same} ({len(found['keyframes'])} of {len(frames)})")
    both = sorted(set(found["keyframes"]) & set(found["every frame"]))
    gap = np.abs(boxes["keyframes"][both] - boxes["every frame"][both])
    print(f"face box corners: median {np.median(gap):.2f} px, max {gap.max():.2f} px apart")


if __name__ == "__main__":
    main()
