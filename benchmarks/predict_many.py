"""``vidfer predict`` over many videos: one process against one invocation per video.

Writes ``--videos`` synthetic action videos (:func:`vidfer.data.synth.make_actions`, 32-48
frames, 48 pixels), trains a narrow 3D ResNet-18 on them for one epoch (the model only has to
exist), then times, side by side:

- one process: ``vidfer predict FOLDER --run RUN --out A`` (the model loaded once, the next
  video decoded in the sandboxed worker while the current one is scored);
- separate invocations: ``vidfer predict VIDEO --run RUN --out B/VIDEO`` once per video, as a
  shell loop would (a new Python, model and sandbox each time).

Both are real subprocesses, start-up included. It prints both times, the ratio and whether every
video got the same label and probabilities (to 1e-6) from both.

Usage:
    .venv/bin/python benchmarks/predict_many.py [--videos 50] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vidfer.config import load_config
from vidfer.data.synth import make_actions
from vidfer.pipelines import train

CONFIG = {
    "seed": 0,
    "data": {"prepare": {"size": 48}, "workers": 1},
    "sampler": {"name": "uniform", "clip_len": 16},
    "transforms": {"size": 48, "flip": 0.0},
    "model": {"name": "resnet3d_18", "params": {"width": 0.25, "temporal_stride": 1}},
    "train": {"epochs": 1, "batch_size": 8},
    "eval": {"mode": "dense"},
}


def vidfer(*args: str) -> None:
    """Run ``vidfer ARGS`` in a new Python; raise with its error output when it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "vidfer", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"vidfer {' '.join(args)} failed:\n{result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="vidfer_predict_many_"))
    try:
        manifest = make_actions(
            work / "data", videos_per_class=max(3, -(-args.videos // 4)), size=48
        )
        videos = sorted((work / "data").rglob("*.mp4"))[: args.videos]
        folder = work / "videos"
        folder.mkdir(exist_ok=True)
        for video in videos:
            shutil.copy(video, folder / video.name)
        config = {**CONFIG, "data": {**CONFIG["data"], "manifest": str(manifest)}}
        (work / "run.yaml").write_text(yaml.safe_dump(config))
        run = work / "run"
        if not (run / "checkpoints").exists():
            train(load_config(work / "run.yaml"), run)

        start = time.perf_counter()
        vidfer("predict", str(folder), "--run", str(run), "--out", str(work / "one"))
        one_s = time.perf_counter() - start
        start = time.perf_counter()
        for video in sorted(folder.iterdir()):
            vidfer(
                "predict", str(video), "--run", str(run), "--out", str(work / "many" / video.stem)
            )
        many_s = time.perf_counter() - start

        with (work / "one" / "index.csv").open(newline="") as handle:
            index = {Path(row["video"]).stem: row for row in csv.DictReader(handle)}
        same = 0
        for video in sorted(folder.iterdir()):
            alone = json.loads((work / "many" / video.stem / "summary.json").read_text())
            row = index[video.stem]
            close = all(
                abs(float(row[f"p_{name}"]) - p) <= 1e-6
                for name, p in alone["probabilities"].items()
            )
            same += int(
                row["label"] == alone["label"] and row["status"] == alone["status"] and close
            )
        count = len(videos)
        print(f"{count} videos, {sum(1 for r in index.values() if r['status'] == 'ok')} scored")
        print(f"one process:           {one_s:7.1f} s  ({one_s / count:.2f} s per video)")
        print(f"separate invocations:  {many_s:7.1f} s  ({many_s / count:.2f} s per video)")
        print(f"ratio: {many_s / one_s:.1f}x; same label and probabilities: {same}/{count}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
