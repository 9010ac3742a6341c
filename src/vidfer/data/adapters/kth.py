"""KTH human actions: ``person<NN>_<action>_d<scenario>_uncomp.avi`` anywhere under the root.

25 persons, 6 actions (boxing, handclapping, handwaving, jogging, running, walking), 4 scenarios.
The subject is the person (``person01``); the ``split`` column is Schuldt et al.'s division of
the persons (training 11-18, validation 1, 4, 19-21, 23-25, test 2, 3, 5-10, 22), which the
leave-one-subject-out protocol of Baccouche et al. ignores.

Variants (Baccouche et al.'s names, after Gao et al.):

* ``kth1``: the 599 recordings whole, each action repeated 3 or 4 times with empty frames between;
* ``kth2``: the recordings cut into the sub-sequences listed in ``00sequences.txt`` (the KTH
  distribution's file; lines ``person01_boxing_d1<tabs>frames<tab>1-95, 96-185, ...``, 1-based
  inclusive frame ranges at 25 frames per second), one row each with ``start``/``end`` seconds.
  The file marks the one recording absent from the distribution with ``*missing*`` in place of
  its ranges (``person13_handclapping_d3``); such an entry yields no row.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from vidfer.data.adapters.common import (
    Options,
    Row,
    find_file,
    no_videos,
    read_lines,
    relative,
    video_files,
)
from vidfer.errors import ManifestError

log = logging.getLogger(__name__)

KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
KTH_FPS = 25.0
VARIANTS = ("kth1", "kth2")
_TRAIN_PERSONS = frozenset(range(11, 19))
_VAL_PERSONS = frozenset({1, 4, 19, 20, 21, 23, 24, 25})
_NAME = re.compile(r"^person(\d+)_([a-z]+)_d(\d)_uncomp$")
_SEQUENCE = re.compile(r"^(person\d+_[a-z]+_d\d)\s+frames\s+(.+)$")
_MISSING = re.compile(r"^(person\d+_[a-z]+_d\d)\s+\*missing\*$")
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def _split(person: int) -> str:
    if person in _TRAIN_PERSONS:
        return "train"
    return "val" if person in _VAL_PERSONS else "test"


def _recordings(root: Path) -> list[tuple[str, Row]]:
    """(``person01_boxing_d1``, row) of every KTH recording under ``root``."""
    found = []
    for video in video_files(root):
        match = _NAME.match(video.stem)
        if match is None:
            continue
        person, action = int(match.group(1)), match.group(2)
        if action not in KTH_ACTIONS:
            raise ManifestError(
                f"{video}: unknown KTH action {action!r}; expected one of {', '.join(KTH_ACTIONS)}"
            )
        stem = video.stem.removesuffix("_uncomp")
        row = {
            "path": relative(video, root),
            "label": action,
            "split": _split(person),
            "subject": f"person{person:02d}",
            "video_id": stem,
        }
        found.append((stem, row))
    if not found:
        raise no_videos(root, "KTH files named person<NN>_<action>_d<1-4>_uncomp.avi")
    return found


def read_sequences(path: Path) -> dict[str, list[tuple[int, int]]]:
    """``00sequences.txt``: recording name -> its (first, last) frame ranges, 1-based inclusive.

    Lines that do not start with ``person`` (the file's prose header, including its
    ``Training:``/``Validation:``/``Test:`` person lists) are skipped. A recording marked
    ``*missing*`` maps to an empty list.

    Raises:
        ManifestError: naming the line of an entry that does not parse.
    """
    sequences: dict[str, list[tuple[int, int]]] = {}
    for number, line in read_lines(path):
        if not line.startswith("person"):
            continue
        missing = _MISSING.match(line)
        if missing is not None:
            sequences[missing.group(1)] = []
            continue
        match = _SEQUENCE.match(line)
        ranges = [(int(a), int(b)) for a, b in _RANGE.findall(match.group(2))] if match else []
        if match is None or not ranges or any(a < 1 or b < a for a, b in ranges):
            raise ManifestError(
                f"{path}:{number}: expected 'person<NN>_<action>_d<K>  frames  A-B, C-D, ...' "
                f"(or '*missing*' in place of the ranges), got {line!r}"
            )
        sequences[match.group(1)] = ranges
    return sequences


def kth_rows(root: Path, options: Options) -> list[Row]:
    """KTH1 (whole recordings) or KTH2 (the sub-sequences of ``00sequences.txt``).

    Raises:
        ManifestError: on no recording, an unknown action, an unreadable sequence line, or a
            recording without an entry in ``00sequences.txt`` (KTH2).
    """
    recordings = _recordings(root)
    if options.variant != "kth2":
        return [row for _, row in recordings]
    sequences_file = find_file(root, "00sequences.txt", "KTH's sub-sequence list")
    sequences = read_sequences(sequences_file)
    rows = []
    for stem, row in recordings:
        if stem not in sequences:
            raise ManifestError(f"{sequences_file}: no entry for the recording {stem}; add one")
        if not sequences[stem]:
            log.warning(
                "%s: %s is marked *missing* but its video exists (%s): no frame ranges, skipped",
                sequences_file,
                stem,
                row["path"],
            )
            continue
        for index, (first, last) in enumerate(sequences[stem], start=1):
            # Frame i (1-based) is shown from (i - 1) / fps; the segment ends where frame
            # last + 1 starts.
            rows.append(
                {
                    **row,
                    "video_id": f"{stem}_seq{index}",
                    "start": repr((first - 1) / KTH_FPS),
                    "end": repr(last / KTH_FPS),
                }
            )
    # Entries marked *missing* (person13_handclapping_d3 in the distribution) are expected to
    # have no video; other entries without one suggest an incomplete download.
    found = {stem for stem, _ in recordings}
    unused = sorted(stem for stem, ranges in sequences.items() if ranges and stem not in found)
    if unused:
        log.warning(
            "%s: %d entries without a video (e.g. %s)", sequences_file, len(unused), unused[0]
        )
    return rows
