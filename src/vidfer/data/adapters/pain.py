"""Pain datasets: UNBC-McMaster Shoulder Pain and BioVid Heat Pain (Part A).

UNBC-McMaster (200 sequences of 25 subjects, distributed as images)::

    root/Images/042-ll042/ll042t1aaaff/ll042t1aaaff001.png
    root/Sequence_Labels/OPR/042-ll042/ll042t1aaaff.txt                   one number, 0-5
    root/Sequence_Labels/{AFF,SEN,VAS}/...                                 (not read)
    root/Frame_Labels/PSPI/042-ll042/ll042t1aaaff/ll042t1aaaff001_facs.txt one number, 0-16

Each of ``Images``, ``Sequence_Labels`` and ``Frame_Labels`` may also hold a folder of its own
name (``Images/Images/042-ll042/...``), as the separate archives unpack.

Binary task of Wu et al. (Ayral's thesis §3.3.1.1): the observed pain intensity (OPI, the
observer's rating in ``Sequence_Labels/OPR``) 0 is ``no_pain``, 3 or more ``pain``, 1-2 left
out. Each kept sequence's row names its folder of images, a frame folder
(:mod:`vidfer.io.frame_folder`: read into the prepared store as they are, at
``data.frame_folder_fps``, 25 by default: the archive gives frames, not a rate), and its
per-frame PSPI values are gathered, in the frame folder's order, into
``root/vidfer/pspi/<subject>/<sequence>.txt`` (one value per frame: the manifest's
``frame_labels``, for guided sampling). Existing outputs are kept, so a second run writes nothing.
Manifests written before vidfer read frame folders name lossless re-encodings,
``root/vidfer/videos/<subject>/<sequence>.mp4``; they still work as they are.

BioVid Part A (87 subjects, 20 videos per class and subject)::

    root/video/071309_w_21/071309_w_21-BL1-081.mp4     <subject>-<class>-<number>
    root/starting_point/samples.csv                    (not read: the names carry the same)
    (or the class-per-name files anywhere under root/video or root, e.g. root/video/video/...)

Variants: ``bl1_pa4`` (no stimulus BL1 vs the highest level PA4) and ``bl1_pa34`` (BL1 vs PA3
and PA4); labels ``no_pain`` and ``pain``, the subject from the file name.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from vidfer.data.adapters.common import (
    Options,
    Row,
    no_videos,
    read_number,
    relative,
    require_dir,
    require_file,
    video_files,
)
from vidfer.errors import ManifestError
from vidfer.io.atomic import atomic_write_text
from vidfer.io.frame_folder import list_images

log = logging.getLogger(__name__)

BIOVID_VARIANTS = ("bl1_pa4", "bl1_pa34")
_BIOVID_PAIN = {"bl1_pa4": {"PA4"}, "bl1_pa34": {"PA3", "PA4"}}
_BIOVID_NAME = re.compile(r"^(?P<subject>.+)-(?P<level>BL1|PA[1-4])-(?P<number>\d+)$")


def _opi_label(opi: float) -> str | None:
    """``no_pain`` for OPI 0, ``pain`` for OPI >= 3, None (left out) in between."""
    if opi == 0:
        return "no_pain"
    return "pain" if opi >= 3 else None


def _frames(folder: Path) -> list[Path]:
    """The sequence's frame images, in the order the frame folder is read."""
    images = list_images(folder)
    if not images:
        raise ManifestError(f"{folder}: no frame images (.png) of the sequence")
    return images


def _pspi(images: list[Path], folder: Path, destination: Path) -> None:
    """Gather the per-frame PSPI files of ``images`` into one file (skipped when it exists)."""
    if destination.exists():
        return
    values = [
        read_number(require_file(folder / f"{image.stem}_facs.txt", "the frame's PSPI file"))
        for image in images
    ]
    atomic_write_text(destination, "".join(f"{value:g}\n" for value in values))


def _unbc_dir(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name/name`` when the archive unpacked into a second folder."""
    nested = root / name / name
    return nested if nested.is_dir() else root / name


def unbc_rows(root: Path, options: Options) -> list[Row]:
    """UNBC-McMaster sequences with OPI 0 or >= 3, as frame folders with PSPI frame labels.

    Raises:
        ManifestError: naming a missing folder, image or label file, or an unreadable value.
    """
    opi_root = require_dir(
        _unbc_dir(root, "Sequence_Labels") / "OPR",
        "UNBC-McMaster's observer pain ratings (Sequence_Labels/OPR/<subject>/<sequence>.txt)",
    )
    images_root = require_dir(_unbc_dir(root, "Images"), "UNBC-McMaster's frame images")
    pspi_root = require_dir(_unbc_dir(root, "Frame_Labels") / "PSPI", "UNBC-McMaster's PSPI labels")
    rows: list[Row] = []
    for label_file in sorted(opi_root.glob("*/*.txt")):
        label = _opi_label(read_number(label_file))
        if label is None:
            continue
        subject, sequence = label_file.parent.name, label_file.stem
        frames = require_dir(images_root / subject / sequence, "the sequence's frames")
        pspi = root / "vidfer" / "pspi" / subject / f"{sequence}.txt"
        _pspi(_frames(frames), require_dir(pspi_root / subject / sequence, "its PSPI files"), pspi)
        rows.append(
            {
                "path": relative(frames, root),
                "label": label,
                "subject": subject,
                "video_id": sequence,
                "frame_labels": relative(pspi, root),
            }
        )
    if not rows:
        raise no_videos(root, "sequences with OPR 0 or >= 3 in Sequence_Labels/OPR/<subject>/")
    return rows


def biovid_rows(root: Path, options: Options) -> list[Row]:
    """BioVid Part A videos of BL1 and the variant's pain levels, the subject from the name.

    Raises:
        ManifestError: if no video is named ``<subject>-<BL1|PA1-4>-<number>``.
    """
    folder = root / "video" if (root / "video").is_dir() else root
    pain = _BIOVID_PAIN[options.variant]
    rows: list[Row] = []
    for video in video_files(folder):
        match = _BIOVID_NAME.match(video.stem)
        if match is None:
            continue
        level = match.group("level")
        if level == "BL1" or level in pain:
            rows.append(
                {
                    "path": relative(video, root),
                    "label": "no_pain" if level == "BL1" else "pain",
                    "subject": match.group("subject"),
                }
            )
    if not rows:
        raise no_videos(folder, "BioVid files named <subject>-<BL1|PA1-4>-<number>.mp4")
    return rows
