"""Peak memory of ``vidfer predict`` on a short and a long video: does it grow with the length?

A small run is trained on the synthetic ``actions`` set, one epoch (the weights do not matter
here): with ``--kind resnet3d``, the demo's temporally dense 3D ResNet-18 at ``--width`` and
``--size``; with ``--kind sparse_ae``, Baccouche et al.'s sparse auto-encoder + BLSTM of
``configs/sparse_ae_actions_cpu.yaml`` (192 codes of the 16 patches of a tracked 32x32 box per
3-frame block) on ``--size`` frames. Then two synthetic videos are written, a 60-second and a
10-minute one (the set's videos played one after the other, at 25 fps), and ``vidfer predict
VIDEO --run RUN`` is run on each in its own process. The peak resident memory of each process
(``ru_maxrss`` from ``wait4``) and its wall time are printed with the long/short ratio. The short
video is also predicted in one pass (``eval.chunk_frames: null``), for scale.

Usage:
    .venv/bin/python benchmarks/long_video.py [--kind resnet3d|sparse_ae] [--short 60]
        [--long 600] [--size 112] [--width 0.25] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import yaml

from vidfer.config import load_config
from vidfer.data.manifest import read_manifest
from vidfer.data.synth import make_actions
from vidfer.demo import DEMO_CONFIG
from vidfer.io.video import decode
from vidfer.pipelines import train

FPS = 25
SPARSE_AE_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "sparse_ae_actions_cpu.yaml"


def write_long_video(path: Path, sources: list[Path], seconds: float) -> int:
    """Write ``sources`` one after the other, cycling, for ``seconds``; returns the frames."""
    clips = [decode(source).frames for source in sources]  # each (T, H, W, 3)
    total = round(seconds * FPS)
    written = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.height, stream.width = clips[0].shape[1:3]
        stream.pix_fmt = "yuv420p"
        for index in range(total):  # video after video, from the first again when done
            if written == total:
                break
            for image in clips[index % len(clips)][: total - written]:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
                written += 1
        container.mux(stream.encode(None))
    return written


def predict(video: Path, run: Path, out: Path) -> tuple[float, float]:
    """Peak resident memory (MiB) and wall time (s) of one ``vidfer predict`` process."""
    command = [sys.executable, "-m", "vidfer", "predict", str(video), "--run", str(run)]
    started = time.perf_counter()
    process = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"vidfer predict {video} failed with status {process.returncode}")
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def run_config(kind: str, manifest: Path, size: int, width: float) -> dict[str, Any]:
    """The config of the benchmark's run (one epoch of everything)."""
    data = {"manifest": str(manifest), "prepare": {"size": size}}
    if kind == "sparse_ae":
        config = yaml.safe_load(SPARSE_AE_CONFIG.read_text())
        sparse_ae = {**config["sparse_ae"], "epochs": 1, "patches_per_video": 20}
        return {
            **config,
            "data": {**config["data"], **data},
            "sparse_ae": sparse_ae,
            "train": {**config["train"], "epochs": 1},
        }
    return {
        **DEMO_CONFIG,
        "data": {**DEMO_CONFIG["data"], **data},
        "transforms": {**DEMO_CONFIG["transforms"], "size": size},
        "model": {"name": "resnet3d_18", "params": {"width": width}},
        "train": {"epochs": 1, "batch_size": 4},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["resnet3d", "sparse_ae"], default="resnet3d")
    parser.add_argument("--short", type=float, default=60.0, help="seconds of the short video")
    parser.add_argument("--long", type=float, default=600.0, help="seconds of the long video")
    parser.add_argument("--size", type=int, default=112, help="frame size the model reads")
    parser.add_argument("--width", type=float, default=0.25, help="channel multiplier")
    parser.add_argument("--out", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="vidfer_long_video_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        manifest = make_actions(work / "data", videos_per_class=3, seed=0)
        config = run_config(args.kind, manifest, args.size, args.width)
        (work / "run.yaml").write_text(yaml.safe_dump(config))
        run = work / "run"
        if not (run / "checkpoints" / "last.pt").exists():
            train(load_config(work / "run.yaml"), run)
        one_pass = work / "run_one_pass"
        if not one_pass.exists():
            shutil.copytree(run, one_pass)
            settings = yaml.safe_load((one_pass / "config.yaml").read_text())
            settings["eval"]["chunk_frames"] = None
            (one_pass / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        chunk = load_config(run / "config.yaml").eval.chunk_frames
        sources = [row.path for row in read_manifest(manifest).rows]
        rows = []
        for name, seconds, folder in (
            ("short", args.short, run),
            ("long", args.long, run),
            ("short", args.short, one_pass),
        ):
            video = work / f"{name}.mp4"
            if not video.exists():
                write_long_video(video, sources, seconds)
            peak, wall = predict(video, folder, work / f"predict_{name}_{folder.name}")
            mode = f"chunks of {chunk}" if folder == run else "one pass"
            rows.append((f"{seconds:g} s", round(seconds * FPS), mode, peak, wall))
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)

    model = (
        "sparse auto-encoder + BLSTM (configs/sparse_ae_actions_cpu.yaml)"
        if args.kind == "sparse_ae"
        else f"resnet3d_18 (temporally dense) width {args.width}"
    )
    print(
        f"vidfer predict, {model}, {args.size}x{args.size} frames, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'video':>8} {'frames':>7} {'scoring':>16} {'peak RSS (MiB)':>15} {'seconds':>8}")
    for length, frames, mode, peak, wall in rows:
        print(f"{length:>8} {frames:>7} {mode:>16} {peak:15.0f} {wall:8.1f}")
    print(f"peak RSS long / short (chunks): {rows[1][3] / rows[0][3]:.3f}")


if __name__ == "__main__":
    main()
