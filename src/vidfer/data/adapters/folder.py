"""The generic folder-per-class layout, with or without split folders::

    root/<label>/<video>.mp4                 (no split)
    root/<split>/<label>/<video>.mp4         (split folders: train, val/validation, test)

The class is the folder's name as written.
"""

from __future__ import annotations

from pathlib import Path

from vidfer.data.adapters.common import Options, Row, relative, video_files
from vidfer.data.manifest import VIDEO_EXTENSIONS, manifest_csv
from vidfer.errors import ManifestError
from vidfer.io.atomic import atomic_write_text

SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def folder_manifest_rows(
    root: str | Path, *, extensions: tuple[str, ...] = VIDEO_EXTENSIONS
) -> list[Row]:
    """Manifest rows for a folder-per-class tree (optionally under split folders).

    Args:
        root: The dataset root.
        extensions: File endings that count as videos (lower case, with the dot).

    Raises:
        ManifestError: if ``root`` is not a folder or holds no video in class folders.
    """
    base = Path(root)
    if not base.is_dir():
        raise ManifestError(f"{base}: not a folder; expected root/<label>/<video> files")
    top = sorted(child for child in base.iterdir() if child.is_dir())
    split_layout = bool(top) and all(child.name.lower() in SPLIT_NAMES for child in top)
    groups = (
        [(SPLIT_NAMES[child.name.lower()], child) for child in top]
        if split_layout
        else [("", base)]
    )
    rows: list[Row] = []
    for split, folder in groups:
        for label_dir in sorted(child for child in folder.iterdir() if child.is_dir()):
            for video in video_files(label_dir, extensions):
                row = {"path": relative(video, base), "label": label_dir.name}
                if split:
                    row["split"] = split
                rows.append(row)
    if not rows:
        raise ManifestError(
            f"{base}: no video found in class folders (extensions {', '.join(extensions)})"
        )
    return rows


def folder_rows(root: Path, options: Options) -> list[Row]:
    """The ``folder`` layout's rows (it has no options)."""
    return folder_manifest_rows(root)


def write_folder_manifest(root: str | Path, out: str | Path | None = None) -> Path:
    """Write ``manifest.csv`` for a folder-per-class tree and return its path.

    Args:
        root: The dataset root.
        out: Destination CSV (default ``root/manifest.csv``); paths in it stay relative to root,
            so keep the CSV in ``root`` or pass ``root`` explicitly when reading it.
    """
    base = Path(root)
    destination = Path(out) if out is not None else base / "manifest.csv"
    atomic_write_text(destination, manifest_csv(folder_manifest_rows(base)))
    return destination
