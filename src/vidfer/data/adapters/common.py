"""What the dataset adapters share: their options, finding files, reading lists, failing clearly.

Every adapter reads a dataset's own on-disk layout (folders, file names, split and label files)
and returns manifest rows: dicts with ``path`` (relative to the dataset root) and ``label``, and
optionally ``split``, ``subject``, ``video_id``, ``start``, ``end`` and ``frame_labels``. Nothing
is decoded. A missing folder or file, or a line that does not parse, is a
:class:`~vidfer.errors.ManifestError` naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vidfer.data.manifest import VIDEO_EXTENSIONS
from vidfer.errors import ManifestError
from vidfer.io.frame_folder import list_images

log = logging.getLogger(__name__)

Row = dict[str, str]
"""One manifest row: column name -> value."""


@dataclass(frozen=True)
class Options:
    """Per-layout choices.

    Attributes:
        split_number: Which of a dataset's numbered official splits (HMDB-51, UCF-101: 1-3).
        variant: A layout's variant (e.g. ``kth1``/``kth2``, ``bl1_pa4``/``bl1_pa34``).
    """

    split_number: int = 1
    variant: str = ""


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder; else a ManifestError naming it and ``what`` it should hold."""
    if not path.is_dir():
        raise ManifestError(f"{path}: folder not found; expected {what}")
    return path


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file; else a ManifestError naming it and ``what`` it should be."""
    if not path.is_file():
        raise ManifestError(f"{path}: file not found; expected {what}")
    return path


def find_file(root: Path, name: str, what: str) -> Path:
    """The one file called ``name`` anywhere under ``root``.

    Raises:
        ManifestError: if there is none, or several (naming two of them).
    """
    found = sorted(path for path in root.rglob(name) if path.is_file())
    if not found:
        raise ManifestError(f"{root}: no file {name!r} found under it; expected {what}")
    if len(found) > 1:
        raise ManifestError(
            f"{root}: several files {name!r} ({found[0]}, {found[1]}); keep one copy"
        )
    return found[0]


def video_files(folder: Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> list[Path]:
    """Every video file under ``folder`` (recursively), sorted."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in extensions and not path.name.startswith(".")
    )


def videos_by_folder_and_name(root: Path) -> dict[tuple[str, str], Path]:
    """Every video under ``root`` keyed by (its folder's name, its file name).

    Split lists name videos as ``<class>/<file>`` (UCF-101) or by file name in a per-class list
    (HMDB-51); this index finds them wherever the class folders are unpacked.
    """
    return {(path.parent.name, path.name): path for path in video_files(root)}


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with forward slashes (the manifest's form)."""
    return path.relative_to(root).as_posix()


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a text file with their 1-based numbers, stripped.

    Raises:
        ManifestError: if the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise ManifestError(f"{path}: cannot read: {error.strerror}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def read_number(path: Path) -> float:
    """The single number a label file holds (e.g. ``3.0000000e+00``).

    Raises:
        ManifestError: naming the file if it is missing or not one number.
    """
    lines = [line for _, line in read_lines(require_file(path, "a label file"))]
    try:
        (value,) = (float(line) for line in " ".join(lines).split())
    except ValueError:
        raise ManifestError(f"{path}: expected one number, got {' '.join(lines)[:40]!r}") from None
    return value


def no_videos(root: Path, what: str) -> ManifestError:
    """The error for a tree that yields no row."""
    return ManifestError(f"{root}: no video found; expected {what}")


def line_error(source: Path, line: int, message: str) -> ManifestError:
    """The error for line ``line`` of a dataset's list or label file."""
    return ManifestError(f"{source}:{line}: {message}")


def coded_label(codes: dict[str, str], code: str, source: Path, line: int) -> str:
    """The label of a dataset's label ``code``, or an error naming the file, line and codes."""
    if code not in codes:
        known = ", ".join(f"{key}={value}" for key, value in codes.items())
        raise line_error(source, line, f"unknown label code {code!r}; known: {known}")
    return codes[code]


def clip_folder(folder: Path, root: Path, source: Path, line: int) -> str:
    """``folder`` (a clip's frames) relative to ``root``; an error naming the list line if gone."""
    if not folder.is_dir():
        raise line_error(source, line, f"clip folder {folder} not found")
    return relative(folder, root)


def first_dir(root: Path, candidates: tuple[str, ...], what: str) -> Path:
    """The first of ``root/<candidate>`` that is a folder; else an error naming them all."""
    for candidate in candidates:
        if (root / candidate).is_dir():
            return root / candidate
    tried = ", ".join(str(root / candidate) for candidate in candidates)
    raise ManifestError(f"{root}: folder not found; expected {what} ({tried})")


def sequence_images(folder: Path) -> list[Path]:
    """The images of a sequence folder in the order preparation reads them (natural order of
    their names, :func:`vidfer.io.frame_folder.list_images`); an error naming it when there are
    none."""
    images = list_images(folder)
    if not images:
        raise ManifestError(f"{folder}: no frame images in the sequence folder")
    return images
