"""RAVDESS (Livingstone & Russo, PLoS ONE 2018): 24 actors, speech and song, 8 emotions.

Layout of the distributed archives (``Video_Speech_Actor_01.zip`` ... unpack to ``Actor_01/``;
the file-name code is the dataset's README, also quoted in public loaders, e.g.
``DetectingHumanEmotion/detecting-human-emotion-webapp/training-data/emotion-audio-datasets/
README.txt``)::

    root/Actor_12/01-01-06-01-02-01-12.mp4     full audio-video take
    root/Actor_12/02-01-06-01-02-01-12.mp4     the same take, video only
    root/Audio_Speech_Actors_01-24/...wav      (audio-only, modality 03: not read)

Seven two-digit fields: modality (01 full-AV, 02 video-only, 03 audio-only), vocal channel
(01 speech, 02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful,
07 disgust, 08 surprised), intensity (01 normal, 02 strong), statement (01, 02), repetition
(01, 02), actor (01-24). A take's full-AV and video-only files are one row: its ``video_id`` is
the take's code without the modality, its path the full-AV file (it carries the audio too),
or the video-only file when the full-AV one is missing. Variants: ``speech`` (default),
``song``, ``speech_song``. The subject is the actor; the protocol is actor-disjoint folds
(``subject_kfold``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from vidfer.data.adapters.common import Options, Row, no_videos, relative, video_files
from vidfer.errors import ManifestError

log = logging.getLogger(__name__)

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
"""RAVDESS's labels in code order (codes 01-08)."""
VARIANTS = ("speech", "song", "speech_song")
_CHANNELS = {"speech": {"01"}, "song": {"02"}, "speech_song": {"01", "02"}}
_NAME = re.compile(r"^\d\d(-\d\d){6}$")
_FIELDS = {
    "modality": ("01", "02", "03"),
    "vocal channel": ("01", "02"),
    "emotion": tuple(f"{code:02d}" for code in range(1, 9)),
    "intensity": ("01", "02"),
    "statement": ("01", "02"),
    "repetition": ("01", "02"),
    "actor": tuple(f"{code:02d}" for code in range(1, 25)),
}


def parse_name(path: Path) -> dict[str, str]:
    """The seven fields of a RAVDESS file name.

    Raises:
        ManifestError: naming the file when its name is not seven two-digit codes or a code
            is not one the dataset uses.
    """
    if not _NAME.match(path.stem):
        raise ManifestError(
            f"{path}: not a RAVDESS name; expected seven two-digit codes like 01-01-06-01-02-01-12"
        )
    fields = dict(zip(_FIELDS, path.stem.split("-"), strict=True))
    for field, code in fields.items():
        if code not in _FIELDS[field]:
            raise ManifestError(
                f"{path}: unknown {field} code {code!r}; known: {', '.join(_FIELDS[field])}"
            )
    return fields


def ravdess_rows(root: Path, options: Options) -> list[Row]:
    """One row per take of the chosen vocal channels, the actor as subject.

    Raises:
        ManifestError: naming the first video whose name does not follow the code.
    """
    takes: dict[str, dict[str, Path]] = {}
    fields_of: dict[str, dict[str, str]] = {}
    for video in video_files(root):
        fields = parse_name(video)
        if fields["modality"] == "03" or fields["vocal channel"] not in _CHANNELS[options.variant]:
            continue
        take = video.stem[3:]
        takes.setdefault(take, {})[fields["modality"]] = video
        fields_of[take] = fields
    rows: list[Row] = []
    for take, files in sorted(takes.items()):
        if "01" not in files:
            log.info("%s: no full audio-video file of the take; its video-only file is used", take)
        fields = fields_of[take]
        rows.append(
            {
                "path": relative(files["01"] if "01" in files else files["02"], root),
                "label": EMOTIONS[int(fields["emotion"]) - 1],
                "subject": fields["actor"],
                "video_id": take,
            }
        )
    if not rows:
        raise no_videos(
            root, f"RAVDESS {options.variant} videos named like Actor_01/01-01-06-01-02-01-01.mp4"
        )
    return rows
