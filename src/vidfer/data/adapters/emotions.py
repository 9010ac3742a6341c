"""Emotion datasets laid out as partition folders of emotion folders: AFEW and GEMEP-FERA.

AFEW (EmotiW)::

    root/Train_AFEW/Angry/000046280.avi      (or Train/, Val/, Val_AFEW/, Validation/, Test/)
    root/Val_AFEW/Happy/000150160.avi

The seven emotions (``angry``, ``disgust``, ``fear``, ``happy``, ``neutral``, ``sad``,
``surprise``; folder names in any case) become lower-case labels, the partition the split
(``train``, ``val``, ``test``). Ayral's protocol trains on a stratified 80% of Train, stops on
the other 20% and tests on Val: the ``official`` protocol does that when there is no Test.

GEMEP-FERA (FERA 2011 emotion sub-challenge)::

    root/train/anger/<video>.avi             (anger, fear, joy, relief, sadness)
    root/test/joy/<video>.avi                (labelled test videos, when you have them)
    root/actors.csv                          optional, vidfer's own file: video,actor

This arrangement is vidfer's, not checked against the distribution: the challenge served its
partitions from an online web-database (sspnet.eu/fera2011/fera2011data) and no public loader
or file list of GEMEP-FERA was found to check a layout against; sort the videos into these
folders by their emotion. ``actors.csv`` is not shipped with the dataset either: the file names
do not carry the actor, so write it yourself (one ``video,actor`` line a video) when you know
the actors; with it the ``subject`` column is filled and experiments split test results into
person-independent (actors absent from training) and person-specific ones, as Baccouche et
al. report. Without it the manifest has no subject column.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from vidfer.data.adapters.common import (
    Options,
    Row,
    no_videos,
    relative,
    require_dir,
    video_files,
)
from vidfer.errors import ManifestError

log = logging.getLogger(__name__)

AFEW_EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
GEMEP_EMOTIONS = ("anger", "fear", "joy", "relief", "sadness")
_PARTITIONS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def _partition(name: str) -> str | None:
    """The split of a partition folder (``Train_AFEW`` -> ``train``), or None."""
    return _PARTITIONS.get(name.lower().removesuffix("_afew"))


def partition_rows(root: Path, emotions: tuple[str, ...], dataset: str) -> list[Row]:
    """Rows of ``root/<partition>/<emotion>/<video>``.

    A folder that is not an emotion fails when it holds videos (a misspelt class) and is
    skipped otherwise (e.g. AFEW's landmark folders).

    Raises:
        ManifestError: naming the missing partition, the unknown emotion folder, or an empty tree.
    """
    require_dir(root, f"the {dataset} root with Train/Val/Test folders")
    partitions = [
        (split, child)
        for child in sorted(root.iterdir())
        if child.is_dir() and (split := _partition(child.name)) is not None
    ]
    if not any(split == "train" for split, _ in partitions):
        raise ManifestError(
            f"{root}: no training partition folder; expected {root}/Train/<Emotion>/<video>"
        )
    rows: list[Row] = []
    for split, folder in partitions:
        for emotion_dir in sorted(child for child in folder.iterdir() if child.is_dir()):
            videos = video_files(emotion_dir)
            label = emotion_dir.name.lower()
            if label not in emotions:
                if videos:
                    raise ManifestError(
                        f"{emotion_dir}: not a {dataset} emotion; expected folders named "
                        f"{', '.join(emotions)}"
                    )
                log.debug("%s: no video, not an emotion folder: skipped", emotion_dir)
                continue
            rows.extend(
                {"path": relative(video, root), "label": label, "split": split} for video in videos
            )
    if not rows:
        raise no_videos(root, f"{dataset} videos in <partition>/<emotion>/ folders")
    return rows


def afew_rows(root: Path, options: Options) -> list[Row]:
    """AFEW's Train/Val(/Test) emotion folders."""
    return partition_rows(root, AFEW_EMOTIONS, "AFEW")


def _actors(table: Path) -> dict[str, str]:
    """``actors.csv``: file name (or its stem) -> actor id."""
    with table.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"video", "actor"} <= set(reader.fieldnames):
            raise ManifestError(f"{table}:1: expected the header 'video,actor'")
        actors = {}
        for row in reader:
            if not row["video"] or not row["actor"]:
                raise ManifestError(f"{table}:{reader.line_num}: empty video or actor")
            actors[Path(row["video"]).stem] = row["actor"]
    return actors


def gemep_rows(root: Path, options: Options) -> list[Row]:
    """GEMEP-FERA's train/test emotion folders, with actors from ``actors.csv`` if present.

    Raises:
        ManifestError: as :func:`partition_rows`, or if ``actors.csv`` misses a video.
    """
    rows = partition_rows(root, GEMEP_EMOTIONS, "GEMEP-FERA")
    table = root / "actors.csv"
    if not table.is_file():
        log.info("%s: no actors.csv; the manifest has no subject column", root)
        return rows
    actors = _actors(table)
    for row in rows:
        stem = Path(row["path"]).stem
        if stem not in actors:
            raise ManifestError(f"{table}: no actor for video {row['path']!r}; add a line")
        row["subject"] = actors[stem]
    return rows
