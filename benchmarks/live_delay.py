"""``vidfer live`` on a 25 frames/s file played in real time: the delay from a frame's arrival
to its prediction, with the default FER model.

Writes the carphone sample's 120 frames, ``--loops`` times over, as a 25 frames/s H.264 file
(the issue's 25 frames/s; the sample itself is 29.97), then runs ``vidfer live FILE --realtime
--no-preview --threads N`` as a real subprocess for each ``--threads`` value, alternating them
``--repeats`` times so that load from other processes hits them alike. Prints per run the frames
read, scored and dropped and the median and 95th-percentile delay, against the target: one window
(``FER_SMOOTHING`` frames at 25 frames/s) plus 200 ms; and the load average before each run.

Usage:
    .venv/bin/python benchmarks/live_delay.py [--loops 3] [--repeats 2] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from vidfer.assets import asset_path, fetch_assets
from vidfer.io.writer import write_video
from vidfer.predict import FER_SMOOTHING

FPS = 25.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=3, help="times the 120 frames are played")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "fer_mini_xception"])
    with av.open(str(asset_path("carphone"))) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    target_ms = 1000 * FER_SMOOTHING / FPS + 200
    with tempfile.TemporaryDirectory(prefix="vidfer_live_") as work:
        video = Path(work) / "carphone_25fps.mp4"
        write_video(video, np.concatenate([frames] * args.loops), FPS)  # (120 * loops, H, W, 3)
        print(f"{video.name}: {120 * args.loops} frames at {FPS} fps; target {target_ms:.0f} ms")
        for repeat in range(args.repeats):
            for threads in args.threads:
                load = os.getloadavg()[0]
                result = subprocess.run(
                    [sys.executable, "-m", "vidfer", "live", str(video), "--realtime",
                     "--no-preview", "--threads", str(threads)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                summary = json.loads(result.stdout.splitlines()[-1])
                print(
                    f"repeat {repeat} threads {threads} (load {load:.1f}): "
                    f"read {summary['frames_read']} scored {summary['frames_scored']} "
                    f"dropped {summary['frames_dropped']}; delay median "
                    f"{summary['delay_ms_median']} ms, p95 {summary['delay_ms_p95']} ms "
                    f"({summary['delay_ms_median'] / target_ms:.2f} of the target)"
                )


if __name__ == "__main__":
    main()
