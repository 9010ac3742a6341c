"""Test helpers: tiny real mp4 datasets written with PyAV, and broken files."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import av
import cv2
import numpy as np

from vidfer.assets import asset_path, fetch_assets
from vidfer.io.writer import write_video

if TYPE_CHECKING:
    from vidfer.faces.mtcnn import MTCNN

TESTS = Path(__file__).resolve().parent
"""The tests folder: one subfolder per package of vidfer, the shared helpers and fixtures."""
CONFIGS = TESTS.parent / "configs"
"""The shipped run configs."""
FIXTURES = TESTS / "fixtures"
"""Files the tests read (recorded reference outputs)."""


def moving_square(direction: int, frames: int = 20, size: int = 32, seed: int = 0) -> np.ndarray:
    """A bright square sliding left (-1) or right (+1) over noise: uint8 (T, H, W, 3)."""
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 60, size=(frames, size, size, 3), dtype=np.uint8)
    start = int(rng.integers(0, size))
    row = int(rng.integers(4, size - 12))
    for t in range(frames):
        col = (start + direction * 2 * t) % (size - 8)
        video[t, row : row + 8, col : col + 8] = 230
    return video


def write_frame_folder(
    folder: Path, frames: np.ndarray, names: list[str] | None = None, suffix: str = ".png"
) -> Path:
    """``frames`` uint8 (T, H, W, 3) RGB as images ``frame1.png``, ``frame2.png``, ... (or
    ``names``) in ``folder``: a frame folder."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"frame{i}{suffix}" for i in range(1, len(frames) + 1)]
    for name, frame in zip(names, frames, strict=True):
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def write_square_dataset(root: Path, per_class: int = 4, frames: int = 20) -> Path:
    """``root/manifest.csv`` with classes left/right and train/val/test splits."""
    lines = ["path,label,split,subject"]
    splits = ["train", "train", "val", "test"]
    for label, direction in (("left", -1), ("right", 1)):
        for i in range(per_class):
            rel = f"videos/{label}/{i}.mp4"
            write_video(
                root / rel, moving_square(direction, frames, seed=i + 10 * (direction + 1)), 10.0
            )
            lines.append(f"{rel},{label},{splits[i % len(splits)]},s{i}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def copy_dataset(source: Path, destination: Path) -> Path:
    """A copy of a session dataset folder (a fixture of conftest.py) at ``destination``, for a
    test that writes into it (a prepared store, changed files); returns its manifest."""
    return Path(shutil.copytree(source, destination)) / "manifest.csv"


def write_audio_only(path: Path) -> None:
    """An .mp4 holding half a second of a sine tone and no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = (np.sin(np.arange(8000) / 5.0) * 0.3).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


BROKEN: dict[str, Callable[[Path, Path], None]] = {
    "empty": lambda path, good: path.write_bytes(b""),
    "corrupt": lambda path, good: path.write_bytes(np.random.default_rng(0).bytes(5000)),
    "no_video_stream": lambda path, good: write_audio_only(path),
}


def write_video_with_tone(
    path: Path, frames: np.ndarray, fps: float, tone_hz: float | None, seed: int = 0
) -> Path:
    """An mp4 with the frames and, unless ``tone_hz`` is None, a noisy sine tone (AAC, 16 kHz
    mono) lasting as long as the video."""
    rate = 16_000
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=round(fps))
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate, layout="mono") if tone_hz else None
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        if audio is not None:
            rng = np.random.default_rng(seed)
            t = np.arange(round(rate * len(frames) / fps)) / rate
            wave = 0.3 * np.sin(2 * np.pi * tone_hz * t) + 0.02 * rng.standard_normal(len(t))
            for start in range(0, len(wave), 1024):
                chunk = wave[start : start + 1024].astype(np.float32)[None]  # (1, n) planar
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


# Runs ``vidfer`` commands one after the other through the real CLI entry point, in one Python:
# a documented sequence of commands costs one start of Python and torch, not one per command.
_SESSION = """
import json, sys
from vidfer.cli import main
for args in json.loads(sys.argv[1]):
    print("$ vidfer " + " ".join(args), file=sys.stderr, flush=True)
    status = main(args)
    if status:
        sys.exit(f"exit status {status}")
"""


def run_vidfer_session(
    commands: Sequence[Sequence[str]], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``vidfer`` commands (their arguments, without ``vidfer``) in order in one subprocess,
    stopping at the first that fails (its exit status, non-zero, is the subprocess's)."""
    return subprocess.run(
        [sys.executable, "-c", _SESSION, json.dumps([list(args) for args in commands])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def vidfer_main_in_child(
    args: Sequence[str],
    stdout: int,
    stderr: int,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> NoReturn:
    """The body of a forked child that runs ``vidfer ARGS`` through the real entry point
    (:func:`vidfer.cli.main`) as a fresh ``vidfer`` process would: its output on the file
    descriptors ``stdout`` and ``stderr``, nothing on its input, in environment ``env`` (this
    process's when None) and folder ``cwd``; exits with the command's status (1 on an uncaught
    exception, as Python)."""
    status = 1
    try:  # the child never leaves this block but through os._exit
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # not the test worker's own input
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (the child's)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        logging.root.handlers.clear()  # as in a fresh process: main's logging.basicConfig acts
        from vidfer.cli import common, main

        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit():  # the CLI's consoles read it when imported, as a fresh process does
            common.console.width = common.err_console.width = int(columns)
        status = main(list(args))
    except SystemExit as stop:  # argparse's usage errors, sys.exit("message")
        if stop.code is None or isinstance(stop.code, int):
            status = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def vidfer_forked(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``vidfer ARGS`` to its end in a forked child of this test process and return it as
    ``subprocess.run(..., capture_output=True, text=True)`` does: a real process running the real
    entry point, with its own state, exit status and output, without the seconds a fresh
    interpreter spends importing torch and vidfer's pipelines (the pytest process has them).
    What only a fresh interpreter shows (``python -m vidfer``, lazy imports, an installed wheel)
    is tested with real subprocesses.

    Raises:
        subprocess.TimeoutExpired: the child killed, if it ran longer than ``timeout`` seconds.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            vidfer_main_in_child(args, out.fileno(), err.fileno(), env, cwd)
        deadline = time.monotonic() + timeout
        while not (ended := os.waitpid(pid, os.WNOHANG))[0]:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise subprocess.TimeoutExpired(["vidfer", *args], timeout)
            time.sleep(0.005)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            ["vidfer", *args],
            os.waitstatus_to_exitcode(ended[1]),
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


@functools.cache
def sample_frames(name: str) -> np.ndarray:
    """All frames of a sample video asset, uint8 ``(T, H, W, 3)``, decoded with PyAV (once per
    test process)."""
    fetch_assets([name])
    with av.open(str(asset_path(name))) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@functools.cache
def pretrained_mtcnn() -> MTCNN:
    """The pretrained MTCNN (weights fetched from the vidfer assets), built once per process
    (torch imported only by the tests that ask for it)."""
    from vidfer.faces.mtcnn import load_mtcnn

    fetch_assets(["mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"])
    return load_mtcnn()
