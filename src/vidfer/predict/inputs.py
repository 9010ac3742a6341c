"""The videos ``vidfer predict`` is given: files, folders, glob patterns and manifests.

Each argument is, in this order of checks: a manifest (an existing ``.csv`` file: its rows'
videos, validated as :func:`vidfer.data.manifest.read_manifest` does), a video file, a frame
folder (a folder holding frame images: one video, :mod:`vidfer.io.frame_folder`), a folder
(every video file and every frame folder under it, recursively) or a glob pattern (``*``, ``?``,
``[``; ``**`` crosses folders; files and frame folders it matches). The videos come out in the
order given (a folder's and a pattern's sorted), each once.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from vidfer.data.manifest import VIDEO_EXTENSIONS, read_manifest
from vidfer.errors import ConfigError
from vidfer.io.frame_folder import list_images

_GLOB_CHARS = frozenset("*?[")


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def is_frame_folder(path: Path) -> bool:
    """True when ``path`` is a folder holding frame images (then it is one video)."""
    return path.is_dir() and bool(list_images(path))


def _expand(argument: str) -> list[Path]:
    path = Path(argument)
    if path.is_file() and path.suffix.lower() == ".csv":
        return [row.path for row in read_manifest(path).rows]
    if path.is_file() or is_frame_folder(path):
        return [path]
    if path.is_dir():
        found = sorted(item for item in path.rglob("*") if _is_video(item) or is_frame_folder(item))
        if not found:
            extensions = " ".join(VIDEO_EXTENSIONS)
            raise ConfigError(
                f"{path}: no video file (extensions: {extensions}) and no frame folder in "
                "this folder"
            )
        return found
    if _GLOB_CHARS & set(argument):
        matched = sorted(Path(item) for item in glob.glob(argument, recursive=True))
        videos = [item for item in matched if item.is_file() or is_frame_folder(item)]
        if not videos:
            raise ConfigError(f"{argument}: the pattern matches no file; check it")
        return videos
    raise ConfigError(
        f"{argument}: no such file or frame folder (nor a folder of videos); check the path"
    )


def resolve_inputs(arguments: Sequence[str | Path]) -> list[Path]:
    """The videos named by ``arguments`` (files, folders, globs, manifests), each once.

    Raises:
        ConfigError: if an argument names nothing (a missing path, an empty folder, a pattern
            without a match) or nothing is given.
        ManifestError: if a manifest is invalid (its line named).
    """
    if not arguments:
        raise ConfigError("no video given: name files, folders, glob patterns or a manifest")
    seen: set[Path] = set()
    videos: list[Path] = []
    for argument in arguments:
        for path in _expand(str(argument)):
            key = path.absolute()
            if key not in seen:
                seen.add(key)
                videos.append(path)
    return videos
