"""FERV39k (Wang et al., CVPR 2022): 38,935 clips of 22 scenes, 7 emotions, one official split.

Layout of the distributed archive (checked against public loaders: the FERV39k list files
``zengqunzhao/DFER-CLIP/annotation/FERV39K_{train,test}.txt`` name
``2_ClipsforFaceCrop/<Scene>/<Emotion>/<clip>`` folders, and loaders that read
``4_setups/All_scenes/{train_All,test_All}.csv`` with lines ``Action/Sad/0010 Sad``)::

    root/2_ClipsforFaceCrop/Action/Happy/0015/*.jpg        face-cropped frames of one clip
    root/4_setups/All_scenes/train_All.csv                 "<Scene>/<Emotion>/<clip> <Emotion>"
    root/4_setups/All_scenes/test_All.csv

Either folder may sit one level deeper in a folder of its own name, as archives unpack. The
label words (Happy, Sad, Neutral, Angry, Surprise, Disgust, Fear) become lower-case labels;
``train_All`` rows are ``train``, ``test_All`` rows ``test`` (the ``official`` protocol carves
validation from train). Rows name the clip's frame folder.
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
    require_file,
)

EMOTIONS = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
"""FERV39k's labels in the order of its public loaders (indices 0-6)."""
CODES = {name.capitalize(): name for name in EMOTIONS}
_CLIPS = "2_ClipsforFaceCrop"
_SETUPS = "4_setups"


def ferv39k_rows(root: Path, options: Options) -> list[Row]:
    """FERV39k's official train/test lists over its clip folders.

    Raises:
        ManifestError: naming the missing folder or list, or the list line with a malformed
            entry, an unknown emotion word or a clip folder that is not there.
    """
    clips = first_dir(root, (f"{_CLIPS}/{_CLIPS}", _CLIPS), "FERV39k's clip folders")
    setups = first_dir(root, (f"{_SETUPS}/{_SETUPS}", _SETUPS), "FERV39k's split lists")
    rows: list[Row] = []
    for split, name in (("train", "train_All.csv"), ("test", "test_All.csv")):
        table = require_file(setups / "All_scenes" / name, "FERV39k's official split list")
        for line, text in read_lines(table):
            fields = text.split()
            if len(fields) != 2 or fields[0].count("/") != 2:
                raise line_error(
                    table, line, f"expected '<Scene>/<Emotion>/<clip> <Emotion>', got {text!r}"
                )
            label = coded_label(CODES, fields[1], table, line)
            path = clip_folder(clips / fields[0], root, table, line)
            rows.append({"path": path, "label": label, "split": split})
    return rows
