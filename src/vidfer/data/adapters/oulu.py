"""Oulu-CASIA NIR&VIS (Zhao et al., 2011): 80 subjects x 6 posed emotions, neutral to apex.

Layout of an image set of the distributed archive (``OriginalImg`` or a cropped set; checked
against public loaders, e.g. ``oulu_casia_get_data_set`` of FER_MER_data_set_utils, which reads
``<set>/VL/Strong/<person>/<Emotion>/*.jpeg``)::

    root/VL/Strong/P001/Anger/000.jpeg ...      visible light, strong illumination
    root/VL/{Weak,Dark}/...  root/NI/...        (not read)

Pass the image set you use as ROOT (the usual benchmark takes the cropped faces of
``VL/Strong``: 480 sequences). Emotions: Anger, Disgust, Fear, Happiness, Sadness, Surprise
(lower-case labels). The subject is the ``Pnnn`` folder; the usual protocol is 10
subject-independent folds (``subject_kfold`` with 10 folds). Rows name the sequence folder.
"""

from __future__ import annotations

from pathlib import Path

from vidfer.data.adapters.common import (
    Options,
    Row,
    no_videos,
    relative,
    require_dir,
    sequence_images,
)
from vidfer.errors import ManifestError

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
"""Oulu-CASIA's labels (folder names in lower case)."""


def oulu_rows(root: Path, options: Options) -> list[Row]:
    """The ``VL/Strong/<person>/<Emotion>`` sequences, the subject from the path.

    Raises:
        ManifestError: naming the missing ``VL/Strong`` folder, a folder that is not one of the
            six emotions, or a sequence folder without images.
    """
    strong = require_dir(
        root / "VL" / "Strong", "Oulu-CASIA's VL/Strong/<person>/<Emotion> sequences"
    )
    rows: list[Row] = []
    for person in sorted(p for p in strong.iterdir() if p.is_dir()):
        for sequence in sorted(p for p in person.iterdir() if p.is_dir()):
            label = sequence.name.lower()
            if label not in EMOTIONS:
                raise ManifestError(
                    f"{sequence}: not an Oulu-CASIA emotion; expected folders named "
                    f"{', '.join(name.capitalize() for name in EMOTIONS)}"
                )
            sequence_images(sequence)
            rows.append({"path": relative(sequence, root), "label": label, "subject": person.name})
    if not rows:
        raise no_videos(root, "sequences in VL/Strong/<person>/<Emotion>/")
    return rows
