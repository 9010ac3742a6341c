"""The generic folder-per-class layout, with or without split folders::

    root/<label>/<video>.mp4                 (no split)
    root/<split>/<label>/<video>.mp4         (split folders: train, val/validation, test)
    root/[<split>/]<label>/<clip>/0001.png   (a frame folder: a sub-folder holding images)

The class is the folder's name as written. Under a class folder, video files at any depth are
videos, and so is every sub-folder that holds images (png, jpg/jpeg, bmp: a frame folder, read
as a video by :mod:`vidfer.io.frame_folder`); a frame folder's own sub-folders are not searched,
images lying directly in the class folder are not a video (a still-image dataset), and hidden
folders (such as a ``.vidfer_store`` beside the manifest) are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from vidfer.data.adapters.common import Options, Row, relative
from vidfer.data.manifest import VIDEO_EXTENSIONS, manifest_csv
from vidfer.errors import ManifestError
from vidfer.io.atomic import atomic_write_text
from vidfer.io.frame_folder import IMAGE_SUFFIXES

SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def _folders(parent: Path) -> list[Path]:
    """The sub-folders of ``parent``, sorted, hidden ones (such as ``.vidfer_store``) left out."""
    return sorted(c for c in parent.iterdir() if c.is_dir() and not c.name.startswith("."))


def _class_videos(label_dir: Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> list[Path]:
    """The videos under a class folder, sorted: video files at any depth, and frame folders
    (sub-folders holding images; not searched further)."""
    found: list[Path] = []
    for folder, subfolders, files in os.walk(label_dir):
        here = Path(folder)
        names = [name for name in files if not name.startswith(".")]
        if here != label_dir and any(name.lower().endswith(IMAGE_SUFFIXES) for name in names):
            found.append(here)
            subfolders.clear()  # its sub-folders are not frames of it, nor videos of the class
            continue
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [here / name for name in names if Path(name).suffix.lower() in extensions]
    return sorted(found)


def folder_manifest_rows(
    root: str | Path, *, extensions: tuple[str, ...] = VIDEO_EXTENSIONS
) -> list[Row]:
    """Manifest rows for a folder-per-class tree (optionally under split folders) of video
    files and frame folders.

    Args:
        root: The dataset root.
        extensions: File endings that count as video files (lower case, with the dot).

    Raises:
        ManifestError: if ``root`` is not a folder or holds no video in class folders.
    """
    base = Path(root)
    if not base.is_dir():
        raise ManifestError(f"{base}: not a folder; expected root/<label>/<video> files")
    top = _folders(base)
    split_layout = bool(top) and all(child.name.lower() in SPLIT_NAMES for child in top)
    groups = (
        [(SPLIT_NAMES[child.name.lower()], child) for child in top]
        if split_layout
        else [("", base)]
    )
    rows: list[Row] = []
    for split, folder in groups:
        for label_dir in _folders(folder):
            for video in _class_videos(label_dir, extensions):
                row = {"path": relative(video, base), "label": label_dir.name}
                if split:
                    row["split"] = split
                rows.append(row)
    if not rows:
        raise ManifestError(
            f"{base}: no video found in class folders (extensions {', '.join(extensions)}, "
            "or sub-folders of images)"
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
