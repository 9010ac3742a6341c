"""Manifests: the CSV that lists a dataset's videos, validated whole before any work starts.

Format (DESIGN §3): a header with ``path,label`` required and ``split``, ``subject``, ``video_id``,
``start``, ``end``, ``frame_labels`` optional. ``frame_labels`` names a text file with one number
per line for every frame of the source video (e.g. UNBC-McMaster's PSPI pain intensity), used by
guided clip sampling and per-frame evaluation. Paths are relative to the dataset root (the
manifest's folder unless given) and must stay inside it: absolute paths, ``..`` escapes and
symlinks pointing outside are refused without opening the file. Every problem is reported with
its line number.

The file is UTF-8 text, except that a path may hold the raw bytes of a file name in a legacy
encoding (as ``ls > manifest.csv`` writes them): such a row is kept, and preparation rejects its
video as ``bad_name`` while the others go on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np

from vidfer.errors import ManifestError

REQUIRED_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("split", "subject", "video_id", "start", "end", "frame_labels")
SPLITS = ("train", "val", "test")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")


@dataclass(frozen=True)
class ManifestRow:
    """One video of a manifest.

    Attributes:
        line: Line number in the CSV (the header is line 1).
        rel_path: The path as written, relative to the dataset root.
        path: The resolved absolute path (inside the dataset root).
        label: Class name.
        label_index: Index of ``label`` in the manifest's class list.
        split: ``train``, ``val``, ``test`` or ``""`` when the manifest has no split column.
        subject: Subject (person) identifier, ``""`` if unknown.
        video_id: Unique identifier (default: ``rel_path`` without its extension).
        start: Start time in seconds of the segment to use, or None.
        end: End time in seconds, or None.
        frame_labels: The per-frame label file (inside the dataset root), or None.
    """

    line: int
    rel_path: str
    path: Path
    label: str
    label_index: int
    split: str
    subject: str
    video_id: str
    start: float | None = None
    end: float | None = None
    frame_labels: Path | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.

    Attributes:
        source: The CSV file.
        root: Dataset root that every path resolves inside.
        classes: Class names; ``label_index`` indexes this list.
        rows: The videos, in file order.
    """

    source: Path
    root: Path
    classes: tuple[str, ...]
    rows: tuple[ManifestRow, ...]

    def split(self, name: str) -> list[ManifestRow]:
        """Rows of one split (every row when the manifest has no split column)."""
        if not any(row.split for row in self.rows):
            return list(self.rows)
        return [row for row in self.rows if row.split == name]

    def has_splits(self) -> bool:
        """True when rows carry a split."""
        return any(row.split for row in self.rows)


def _fail(source: Path, line: int, message: str) -> ManifestError:
    return ManifestError(f"{source}:{line}: {message}")


def _safe_path(source: Path, line: int, root: Path, rel: str) -> Path:
    if not rel:
        raise _fail(source, line, "empty path")
    pure = PurePosixPath(rel.replace("\\", "/"))
    if pure.is_absolute() or (len(rel) > 1 and rel[1] == ":"):
        raise _fail(source, line, f"absolute path {rel!r}; write it relative to {root}")
    # resolve() follows symlinks without opening the file, so a link out of the root is caught.
    resolved = (root / Path(*pure.parts)).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise _fail(source, line, f"path {rel!r} escapes the dataset root {root}")
    return resolved


def _is_utf8(text: str) -> bool:
    """False for text read from bytes that are not UTF-8 (they decode to lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_time(source: Path, line: int, column: str, value: str) -> float | None:
    if value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise _fail(source, line, f"column {column!r} must be seconds, got {value!r}") from None
    if not seconds >= 0:
        raise _fail(source, line, f"column {column!r} must be >= 0, got {value!r}")
    return seconds


def _read_records(text: str, source: Path) -> list[tuple[int, dict[str, str]]]:
    """The non-blank data lines of CSV ``text`` as (line number, column -> stripped value)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise _fail(source, 1, "empty manifest; expected a header 'path,label'") from None
    except csv.Error as error:
        raise _fail(source, 1, f"unreadable CSV: {error}") from None
    _check_header(header, source)
    records: list[tuple[int, dict[str, str]]] = []
    try:
        for values in reader:
            line = reader.line_num
            if not values or all(not value.strip() for value in values):
                continue
            if len(values) != len(header):
                raise _fail(source, line, f"expected {len(header)} fields, got {len(values)}")
            fields = {k: v.strip() for k, v in zip(header, values, strict=True)}
            for name, value in fields.items():
                if name != "path" and not _is_utf8(value):
                    raise _fail(source, line, f"column {name!r} is not UTF-8 text; save as UTF-8")
            records.append((line, fields))
    except csv.Error as error:
        raise _fail(source, reader.line_num, f"unreadable CSV: {error}") from None
    if not records:
        raise _fail(source, 2, "the manifest lists no video")
    return records


def _check_header(header: list[str], source: Path) -> None:
    """Refuse a header without the required columns, with unknown columns or with repeats."""
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise _fail(source, 1, f"missing column(s) {', '.join(missing)}; header is {header}")
    unknown = [name for name in header if name not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
    if unknown:
        known = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        raise _fail(source, 1, f"unknown column(s) {', '.join(unknown)}; known: {known}")
    if len(set(header)) != len(header):
        raise _fail(source, 1, f"duplicate column names in header {header}")


def _class_list(
    records: list[tuple[int, dict[str, str]]], classes: Sequence[str] | None, source: Path
) -> tuple[str, ...]:
    """The explicit ``classes``, else the sorted labels of ``records``; refused with repeats."""
    labels = sorted({fields["label"] for _, fields in records})
    class_list = tuple(classes) if classes is not None else tuple(labels)
    if len(set(class_list)) != len(class_list):
        raise ManifestError(f"{source}: the class list {list(class_list)} has duplicates")
    return class_list


_Key = TypeVar("_Key")


@dataclass
class _RowParser:
    """Turns the records of one manifest into rows, refusing a segment or video_id seen before.

    Attributes:
        source: The CSV file (for error messages).
        root: Dataset root.
        classes: The class list.
        index: Class name -> its index in ``classes``.
        segments: (path, start, end) -> line of the row that holds it.
        video_ids: video_id -> line of the row that holds it.
    """

    source: Path
    root: Path
    classes: tuple[str, ...]
    index: dict[str, int] = field(init=False)
    segments: dict[tuple[Path, float | None, float | None], int] = field(default_factory=dict)
    video_ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {name: i for i, name in enumerate(self.classes)}

    def _claim(self, seen: dict[_Key, int], key: _Key, line: int, what: str) -> None:
        """Record that ``line`` holds ``key``; refuse it if an earlier line did."""
        if key in seen:
            raise _fail(self.source, line, f"duplicate {what} (line {seen[key]})")
        seen[key] = line

    def row(self, line: int, fields: dict[str, str]) -> ManifestRow:
        """Validate one record (column -> value) read from ``line``.

        Raises:
            ManifestError: naming ``line`` and the first problem of the record.
        """
        source, root = self.source, self.root
        label = fields["label"]
        if label == "":
            raise _fail(source, line, "empty label")
        if label not in self.index:
            raise _fail(source, line, f"unknown label {label!r}; classes are {list(self.classes)}")
        path = _safe_path(source, line, root, fields["path"])
        start = _parse_time(source, line, "start", fields.get("start", ""))
        end = _parse_time(source, line, "end", fields.get("end", ""))
        if start is not None and end is not None and end <= start:
            raise _fail(source, line, f"end ({end}) must be after start ({start})")
        # One file may appear once per segment (e.g. KTH's sub-sequences of one recording).
        self._claim(self.segments, (path, start, end), line, f"path {fields['path']!r}")
        split = fields.get("split", "")
        if split not in (*SPLITS, ""):
            raise _fail(source, line, f"split {split!r} must be one of {', '.join(SPLITS)}")
        video_id = fields.get("video_id") or str(PurePosixPath(fields["path"]).with_suffix(""))
        self._claim(self.video_ids, video_id, line, f"video_id {video_id!r}")
        frame_labels = fields.get("frame_labels")
        return ManifestRow(
            line=line,
            rel_path=fields["path"],
            path=path,
            label=label,
            label_index=self.index[label],
            split=split,
            subject=fields.get("subject", ""),
            video_id=video_id,
            start=start,
            end=end,
            frame_labels=_safe_path(source, line, root, frame_labels) if frame_labels else None,
        )


def parse_manifest(
    text: str,
    *,
    source: Path,
    root: Path,
    classes: Sequence[str] | None = None,
) -> Manifest:
    """Validate manifest CSV text.

    Args:
        text: The CSV content (a UTF-8 BOM and CRLF line ends are accepted).
        source: File name used in error messages.
        root: Dataset root.
        classes: Explicit class list; None uses the sorted set of labels.

    Raises:
        ManifestError: naming the first bad line and how to fix it.
    """
    records = _read_records(text, source)
    class_list = _class_list(records, classes, source)
    parser = _RowParser(source, root, class_list)
    rows = tuple(parser.row(line, fields) for line, fields in records)
    return Manifest(source=source, root=root, classes=class_list, rows=rows)


def read_manifest(
    path: str | Path, *, root: str | Path | None = None, classes: Sequence[str] | None = None
) -> Manifest:
    """Read and validate a manifest file.

    Args:
        path: The CSV file.
        root: Dataset root (default: the manifest's folder).
        classes: Explicit class list (default: sorted labels).

    Raises:
        ManifestError: on a missing or unreadable file, or any invalid line.
    """
    source = Path(path)
    try:
        # Bytes that are not UTF-8 become lone surrogates: kept in paths, refused elsewhere.
        text = source.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        raise ManifestError(f"{source}: manifest not found") from None
    base = Path(root) if root is not None else source.parent
    return parse_manifest(text, source=source, root=base.absolute(), classes=classes)


def manifest_csv(rows: Iterable[dict[str, str]]) -> str:
    """Render manifest rows (dicts with ``path``, ``label`` and optional columns) as CSV text."""
    rows = list(rows)
    columns = list(REQUIRED_COLUMNS) + [
        name for name in OPTIONAL_COLUMNS if any(name in row for row in rows)
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_frame_labels(row: ManifestRow, manifest: Path) -> np.ndarray:
    """The per-frame values of ``row.frame_labels``: float64 ``(source frames,)``.

    Raises:
        ManifestError: naming the manifest line if the file is missing, empty or not numbers.
    """
    if row.frame_labels is None:
        raise ValueError(f"{manifest}:{row.line}: the row has no frame_labels")
    try:
        text = row.frame_labels.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(
            manifest, row.line, f"cannot read frame_labels {row.frame_labels}: {error}"
        ) from None
    values = []
    for number, value in enumerate(text.split("\n"), start=1):
        if value.strip():
            try:
                values.append(float(value))
            except ValueError:
                raise _fail(
                    manifest,
                    row.line,
                    f"{row.frame_labels}:{number}: {value.strip()!r} is not a number "
                    "(frame_labels files hold one number per line)",
                ) from None
    if not values or not np.all(np.isfinite(values)):
        raise _fail(manifest, row.line, f"{row.frame_labels}: no finite per-frame values")
    return np.asarray(values, dtype=np.float64)
