"""The feature store: one float32 array of per-step features per video and extractor.

Layout::

    <root>/<extractor key>/extractor.json     what produced the features
    <root>/<extractor key>/<video key>.npy    features (T', C) float32, memory-mappable
    <root>/<extractor key>/<video key>.json   the record: video id, frame position of each step

The extractor key hashes the extractor's description (e.g. a run folder and its checkpoint's
identity), the video key is the prepared store's key. Array first, record last, both atomic: a
record that exists describes a complete entry, so an interrupted extraction resumes where it
stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from vidfer.io.atomic import atomic_write_json, atomic_write_with


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies a file's content for a cache key: its resolved path, size and mtime."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class FeatureStore:
    """One extractor's folder of per-video feature sequences.

    Args:
        root: Feature store root (shared by every extractor).
        extractor: JSON-able description of the extractor; its hash names the folder.
    """

    def __init__(self, root: str | Path, extractor: dict[str, Any]) -> None:
        text = json.dumps(extractor, sort_keys=True)
        self.key = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.folder = Path(root) / self.key
        self.extractor = extractor

    def has(self, video_key: str) -> bool:
        """True if the video's features are completely stored."""
        return (self.folder / f"{video_key}.json").exists()

    def save(self, video_key: str, features: np.ndarray, record: dict[str, Any]) -> None:
        """Store features ``(T', C)`` and their record (array first, record last, atomically)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "extractor.json"
        if not meta.exists():
            atomic_write_json(meta, self.extractor)
        array = np.ascontiguousarray(features, dtype=np.float32)
        atomic_write_with(self.folder / f"{video_key}.npy", lambda handle: np.save(handle, array))
        atomic_write_json(self.folder / f"{video_key}.json", {**record, "shape": list(array.shape)})

    def load(self, video_key: str) -> tuple[np.ndarray, dict[str, Any]]:
        """Memory-mapped features ``(T', C)`` and the record of a stored video."""
        record = json.loads((self.folder / f"{video_key}.json").read_text(encoding="utf-8"))
        return np.load(self.folder / f"{video_key}.npy", mmap_mode="r"), record
