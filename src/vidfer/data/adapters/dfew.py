"""DFEW (Jiang et al., ACM MM 2020): 16,372 movie clips, 7 emotions, 5 official folds.

Layout of the distributed archive (checked against the loaders of DFER-CLIP,
``zengqunzhao/DFER-CLIP/annotation/preprocess_annotation.py``, and other public DFEW loaders)::

    root/Clip/clip_224x224/00001/00001_00001.jpg ...      face-cropped frames, one folder a clip
    root/Clip/clip_224x224_16f/00001/...                  the same clips, 16 frames each
    root/Clip/original/...                                 the original video clips
    root/EmoLabel_DataSplit/train(single-labeled)/set_1.csv ... set_5.csv
    root/EmoLabel_DataSplit/test(single-labeled)/set_1.csv ... set_5.csv

Each split file has the header ``video_name,label`` and one clip a line; ``video_name`` is the
clip number (folders are the number zero-padded to five digits) and ``label`` the code 1-7:
happy, sad, neutral, angry, surprise, disgust, fear.

``--split-number k`` writes fold k (``set_k``): its train and test rows; the ``official``
protocol with one manifest per fold runs the five folds. Variants: ``frames`` (default,
``clip_224x224``), ``frames_16f`` (``clip_224x224_16f``) and ``original`` (the video files of
``Clip/original``, named by clip number). Rows of frame folders name the clip's folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

from vidfer.data.adapters.common import (
    Options,
    Row,
    clip_folder,
    coded_label,
    line_error,
    relative,
    require_dir,
    require_file,
    video_files,
)

EMOTIONS = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
"""DFEW's labels in code order (codes 1-7)."""
CODES = {str(code): name for code, name in enumerate(EMOTIONS, start=1)}
FOLDS = (1, 2, 3, 4, 5)
VARIANTS = ("frames", "frames_16f", "original")
_CLIP_DIRS = {"frames": "clip_224x224", "frames_16f": "clip_224x224_16f"}
_SPLIT_DIRS = (("train", "train(single-labeled)"), ("test", "test(single-labeled)"))


def _read_split_csv(table: Path) -> list[tuple[int, str, str]]:
    """(line, clip number, label code) of a ``video_name,label`` split file.

    Raises:
        ManifestError: naming the file and line of a missing header or a malformed line.
    """
    require_file(table, "a DFEW split file with the header video_name,label")
    with table.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"video_name", "label"} <= set(reader.fieldnames):
            raise line_error(table, 1, "expected the header 'video_name,label'")
        entries = []
        for record in reader:
            name, code = (record.get("video_name") or "").strip(), (record.get("label") or "")
            if not name.isdigit():
                raise line_error(table, reader.line_num, f"video_name {name!r} is not a number")
            entries.append((reader.line_num, name, code.strip()))
    return entries


def _original_videos(root: Path) -> dict[int, Path]:
    """The video files of ``Clip/original`` keyed by clip number."""
    folder = require_dir(root / "Clip" / "original", "DFEW's original clips")
    return {int(path.stem): path for path in video_files(folder) if path.stem.isdigit()}


def dfew_rows(root: Path, options: Options) -> list[Row]:
    """The train and test rows of DFEW's fold ``options.split_number``.

    Raises:
        ManifestError: naming the missing folder or split file, or the split file's line with
            a malformed entry, an unknown label code or a clip that is not there.
    """
    splits = require_dir(root / "EmoLabel_DataSplit", "DFEW's split files")
    originals = _original_videos(root) if options.variant == "original" else {}
    clips = root / "Clip" / _CLIP_DIRS.get(options.variant, "")
    if options.variant != "original":
        require_dir(clips, f"DFEW's frame folders ({options.variant})")
    rows: list[Row] = []
    for split, folder in _SPLIT_DIRS:
        table = splits / folder / f"set_{options.split_number}.csv"
        for line, name, code in _read_split_csv(table):
            label = coded_label(CODES, code, table, line)
            if options.variant == "original":
                if int(name) not in originals:
                    raise line_error(table, line, f"no video of clip {name} in Clip/original")
                path = relative(originals[int(name)], root)
            else:
                path = clip_folder(clips / f"{int(name):05d}", root, table, line)
            rows.append({"path": path, "label": label, "split": split})
    return rows
