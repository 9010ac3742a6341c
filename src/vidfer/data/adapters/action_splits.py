"""Action datasets with official split files: HMDB-51 and UCF-101 (three splits each).

HMDB-51::

    root/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi     (one folder per class)
    root/testTrainMulti_7030_splits/brush_hair_test_split1.txt    (anywhere under root)

Each ``<class>_test_split<k>.txt`` line is ``<video file> <id>``: 1 training, 2 testing, 0 not
used in split k (left out of that split's manifest).

UCF-101::

    root/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi
    root/ucfTrainTestlist/classInd.txt        "1 ApplyEyeMakeup"
    root/ucfTrainTestlist/trainlist01.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    root/ucfTrainTestlist/testlist01.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

The ``subject`` column is the video's group (``g08``: clips cut from one recording, the same
actors and scene), which the official splits keep on one side; validation carved from the
training part stays group-disjoint too.
"""

from __future__ import annotations

import re
from pathlib import Path

from vidfer.data.adapters.common import (
    Options,
    Row,
    find_file,
    read_lines,
    relative,
    require_file,
    videos_by_folder_and_name,
)
from vidfer.errors import ManifestError

SPLIT_NUMBERS = (1, 2, 3)
_HMDB_IDS = {"1": "train", "2": "test"}
_UCF_GROUP = re.compile(r"_g(\d+)_c\d+$")


def hmdb51_rows(root: Path, options: Options) -> list[Row]:
    """HMDB-51's videos of official split ``options.split_number``.

    Raises:
        ManifestError: if the split files are missing, a line does not parse, or a listed video
            is not under ``root``.
    """
    number = options.split_number
    suffix = f"_test_split{number}.txt"
    split_files = sorted(path for path in root.rglob(f"*{suffix}") if path.is_file())
    if not split_files:
        raise ManifestError(
            f"{root}: no HMDB-51 split file '<class>{suffix}' under it; unpack the official "
            "testTrainMulti_7030_splits there"
        )
    videos = videos_by_folder_and_name(root)
    rows: list[Row] = []
    for split_file in split_files:
        label = split_file.name.removesuffix(suffix)
        for line_number, line in read_lines(split_file):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ManifestError(
                    f"{split_file}:{line_number}: expected '<video> <0|1|2>', got {line!r}"
                )
            if parts[1] == "0":
                continue
            video = videos.get((label, parts[0]))
            if video is None:
                raise ManifestError(
                    f"{split_file}:{line_number}: video {label}/{parts[0]} not found under {root}"
                )
            rows.append(
                {"path": relative(video, root), "label": label, "split": _HMDB_IDS[parts[1]]}
            )
    return rows


def _ucf_classes(class_index: Path) -> set[str]:
    classes = set()
    for line_number, line in read_lines(class_index):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ManifestError(
                f"{class_index}:{line_number}: expected '<number> <class>', got {line!r}"
            )
        classes.add(parts[1])
    return classes


def ucf101_rows(root: Path, options: Options) -> list[Row]:
    """UCF-101's videos of official split ``options.split_number``, the group as subject.

    Raises:
        ManifestError: if a list file is missing, a line does not parse or names an unknown
            class, or a listed video is not under ``root``.
    """
    class_index = find_file(root, "classInd.txt", "UCF-101's ucfTrainTestlist folder")
    classes = _ucf_classes(class_index)
    videos = videos_by_folder_and_name(root)
    rows: list[Row] = []
    for split in ("train", "test"):
        listing = require_file(
            class_index.parent / f"{split}list{options.split_number:02d}.txt",
            f"UCF-101's {split} list of split {options.split_number}",
        )
        for line_number, line in read_lines(listing):
            entry = line.split()[0]
            label, _, name = entry.partition("/")
            if label not in classes or not name:
                raise ManifestError(
                    f"{listing}:{line_number}: expected '<class>/<video>' with a class of "
                    f"{class_index.name}, got {entry!r}"
                )
            video = videos.get((label, name))
            if video is None:
                raise ManifestError(
                    f"{listing}:{line_number}: video {entry} not found under {root}"
                )
            group = _UCF_GROUP.search(Path(name).stem)
            rows.append(
                {
                    "path": relative(video, root),
                    "label": label,
                    "split": split,
                    "subject": f"g{int(group.group(1)):02d}" if group else "",
                }
            )
    return rows
