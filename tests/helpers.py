"""Test helpers: tiny real mp4 datasets written with PyAV, and broken files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from vidfer.io.writer import write_video


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
