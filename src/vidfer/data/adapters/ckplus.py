"""CK+ (Lucey et al., CVPR workshops 2010): posed sequences from neutral to apex, 7 emotions.

Layout of the distributed archive (``CK+/ReadMeCohnKanadeDatabase_website.txt``; checked against
public loaders, e.g. ``sucv/phd2`` reads ``cohn-kanade-images`` and ``Emotion``)::

    root/cohn-kanade-images/S005/001/S005_001_00000001.png ...   one folder a sequence
    root/Emotion/S005/001/S005_001_00000011_emotion.txt          one number, e.g. 3.0000000e+00

Only the 327 sequences with an emotion file are labelled. Codes: 0 neutral, 1 anger,
2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise. The subject is the ``Snnn``
folder (the ``subject_kfold`` protocol with 10 folds is the usual subject-independent
protocol). Variants: ``sequence`` (default: the whole sequence's folder) and ``last3`` (the
apex: the last three frames, copied once into ``root/vidfer/ckplus_last3/<S>/<seq>/``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vidfer.data.adapters.common import (
    Options,
    Row,
    coded_label,
    no_videos,
    read_number,
    relative,
    require_dir,
    sequence_images,
)
from vidfer.errors import ManifestError

EMOTIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
"""CK+'s labels in code order (codes 0-7)."""
CODES = {str(code): name for code, name in enumerate(EMOTIONS)}
VARIANTS = ("sequence", "last3")
_APEX_FRAMES = 3


def _apex_folder(sequence: Path, destination: Path) -> Path:
    """``destination`` holding copies of the sequence's last frames (kept when it exists)."""
    if not destination.is_dir():
        staging = destination.with_name(destination.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for image in sequence_images(sequence)[-_APEX_FRAMES:]:
            shutil.copyfile(image, staging / image.name)
        staging.rename(destination)
    return destination


def _code(label_file: Path) -> str:
    value = read_number(label_file)
    if value != int(value):
        raise ManifestError(f"{label_file}:1: emotion code {value:g} is not a whole number")
    return str(int(value))


def ckplus_rows(root: Path, options: Options) -> list[Row]:
    """The labelled CK+ sequences (whole, or their last frames), subject from the path.

    Raises:
        ManifestError: naming the missing folder, the label file with an unknown code, or the
            sequence folder that is missing or holds no image.
    """
    images = require_dir(
        root / "cohn-kanade-images", "CK+'s sequences (cohn-kanade-images/S005/001)"
    )
    emotions = require_dir(
        root / "Emotion", "CK+'s emotion labels (Emotion/S005/001/*_emotion.txt)"
    )
    rows: list[Row] = []
    for label_file in sorted(emotions.glob("*/*/*_emotion.txt")):
        label = coded_label(CODES, _code(label_file), label_file, 1)
        subject, number = label_file.parent.parent.name, label_file.parent.name
        sequence = images / subject / number
        if not sequence.is_dir():
            raise ManifestError(f"{label_file}: its sequence folder {sequence} is not there")
        if options.variant == "last3":
            sequence = _apex_folder(sequence, root / "vidfer" / "ckplus_last3" / subject / number)
        else:
            sequence_images(sequence)
        rows.append({"path": relative(sequence, root), "label": label, "subject": subject})
    if not rows:
        raise no_videos(root, "sequences with an Emotion/<S>/<seq>/*_emotion.txt label")
    return rows
