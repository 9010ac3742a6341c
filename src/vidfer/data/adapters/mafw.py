"""MAFW (Liu et al., ACM MM 2022): 10,045 clips, 11 single-label emotions, 5 official folds.

Layout of the distributed archive (checked against the MAFW README,
``MAFW-database/MAFW/README.md``: ``clips/00151.mp4`` and ``single_label.txt``, and the MAFW
split readers of MAE-DFER-style loaders, which read
``Train & Test Set/single/no_caption/set_<k>/{train,test}.txt`` with lines ``00025.mp4 anger``
and frame folders ``data/frames/00025``)::

    root/data/clips/00025.mp4                       the clips (variant ``clips``, default)
    root/data/frames/00025/*.jpg                    their frames (variant ``frames``)
    root/Train & Test Set/single/no_caption/set_1/train.txt ... set_5/test.txt

(``clips/`` and ``frames/`` directly under the root, as the README's content preview shows
them, and ``Train_Test_Set`` for the split folder are accepted too.) Labels, in the order of
the public loaders: anger, disgust, fear, happiness, neutral, sadness, surprise, contempt,
anxiety, helplessness, disappointment. ``--split-number k`` writes fold k; the ``official``
protocol with one manifest per fold runs the five.
"""

from __future__ import annotations

from pathlib import Path

from vidfer.data.adapters.common import (
    Options,
    Row,
    clip_folder,
    coded_label,
    first_dir,
    line_error,
    read_lines,
    relative,
    require_file,
)

EMOTIONS = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)
"""MAFW's single-expression labels in the order of its public loaders."""
CODES = {name: name for name in EMOTIONS}
FOLDS = (1, 2, 3, 4, 5)
VARIANTS = ("clips", "frames")


def mafw_rows(root: Path, options: Options) -> list[Row]:
    """The train and test rows of MAFW's fold ``options.split_number``.

    Raises:
        ManifestError: naming the missing folder or split file, or the split file's line with
            a malformed entry, an unknown label or a clip that is not there.
    """
    sets = first_dir(
        root,
        ("Train & Test Set/single/no_caption", "Train_Test_Set/single/no_caption"),
        "MAFW's single-label split files",
    )
    media = first_dir(
        root, (f"data/{options.variant}", options.variant), f"MAFW's {options.variant}"
    )
    rows: list[Row] = []
    for split in ("train", "test"):
        table = require_file(
            sets / f"set_{options.split_number}" / f"{split}.txt", "a MAFW split file"
        )
        for line, text in read_lines(table):
            fields = text.split()
            if len(fields) != 2 or not fields[0].endswith(".mp4"):
                raise line_error(table, line, f"expected '<clip>.mp4 <label>', got {text!r}")
            label = coded_label(CODES, fields[1], table, line)
            if options.variant == "frames":
                path = clip_folder(media / Path(fields[0]).stem, root, table, line)
            else:
                video = media / fields[0]
                if not video.is_file():
                    raise line_error(table, line, f"clip {video} not found")
                path = relative(video, root)
            rows.append({"path": path, "label": label, "split": split})
    return rows
