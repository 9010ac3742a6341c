"""CREMA-D (Cao et al., IEEE TAC 2014): 7,442 clips of 91 actors, 6 emotions.

Layout of the distributed repository (checked against ``CheyneyComputerScience/CREMA-D``:
``VideoFlash/1001_DFA_ANG_XX.flv`` ..., 7,442 files, beside ``AudioWAV``/``AudioMP3``)::

    root/VideoFlash/1001_DFA_ANG_XX.flv         <actor>_<sentence>_<emotion>_<level>

Actor 1001-1091; sentence one of the 12 codes (IEO, TIE, IOM, IWW, TAI, MTI, IWL, ITH, DFA,
ITS, TSI, WSI); emotion ANG, DIS, FEA, HAP, NEU, SAD (labels anger, disgust, fear, happy,
neutral, sad); level LO, MD, HI or XX (unspecified). The subject is the actor; the protocol is
actor-disjoint folds (``subject_kfold``). Videos converted to another container with the same
names (e.g. ``VideoFlash/*.mp4``) are read the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

from vidfer.data.adapters.common import Options, Row, no_videos, relative, require_dir, video_files
from vidfer.errors import ManifestError

CODES = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
"""CREMA-D's emotion codes and their labels."""
EMOTIONS = tuple(CODES.values())
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")
_NAME = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$"
)


def parse_name(path: Path) -> dict[str, str]:
    """The actor, sentence, emotion and level of a CREMA-D file name.

    Raises:
        ManifestError: naming the file when its name does not follow the code or uses a code
            the dataset does not.
    """
    match = _NAME.match(path.stem)
    if match is None:
        raise ManifestError(
            f"{path}: not a CREMA-D name; expected <actor>_<sentence>_<emotion>_<level>, "
            "e.g. 1001_DFA_ANG_XX"
        )
    fields = match.groupdict()
    known = {"sentence": SENTENCES, "emotion": tuple(CODES), "level": LEVELS}
    for field, codes in known.items():
        if fields[field] not in codes:
            raise ManifestError(
                f"{path}: unknown {field} code {fields[field]!r}; known: {', '.join(codes)}"
            )
    if not 1001 <= int(fields["actor"]) <= 1091:
        raise ManifestError(f"{path}: actor {fields['actor']} is not one of 1001-1091")
    return fields


def cremad_rows(root: Path, options: Options) -> list[Row]:
    """Every video of ``VideoFlash``, labelled and attributed to its actor from the name.

    Raises:
        ManifestError: naming a missing ``VideoFlash`` folder or the first misnamed video.
    """
    rows: list[Row] = []
    for video in video_files(require_dir(root / "VideoFlash", "CREMA-D's VideoFlash/*.flv")):
        fields = parse_name(video)
        rows.append(
            {
                "path": relative(video, root),
                "label": CODES[fields["emotion"]],
                "subject": fields["actor"],
            }
        )
    if not rows:
        raise no_videos(root, "CREMA-D videos in VideoFlash/ named like 1001_DFA_ANG_XX.flv")
    return rows
