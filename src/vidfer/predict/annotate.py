"""``vidfer predict --annotate``: the annotated copy of a predicted video, ``annotated.mp4``.

It reads the prediction back from its ``timeline.csv`` (face box and class probabilities per
decoded frame) and has :func:`vidfer.viz.annotated_video.write_annotated` re-read the source in
a sandboxed worker (the source is untrusted input, as for the prediction) under the run's
``data.limits``: the memory limit, and the decoding time limit once per piece of frames.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from vidfer.config import LimitsConfig
from vidfer.data.preprocess import quarantine_error
from vidfer.io.sandbox import Failure, Sandbox
from vidfer.viz.annotated_video import Annotated, Overlay, write_annotated

ANNOTATED = "annotated.mp4"


def read_overlay(timeline_csv: Path, classes: list[str]) -> Overlay:
    """The overlay of a prediction's ``timeline.csv``."""
    with timeline_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))

    def number(row: dict[str, str], column: str) -> float:
        value = row.get(column, "")
        return float(value) if value else math.nan

    return Overlay(
        classes=classes,
        frames=np.array([int(row["frame"]) for row in rows], dtype=np.int64),
        boxes=np.array(
            [[number(row, c) for c in ("x1", "y1", "x2", "y2")] for row in rows], dtype=np.float64
        ).reshape(len(rows), 4),
        probabilities=np.array(
            [[number(row, f"p_{name}") for name in classes] for row in rows], dtype=np.float64
        ).reshape(len(rows), len(classes)),
    )


def annotate(
    video: Path, out_dir: Path, classes: list[str], limits: LimitsConfig, piece_frames: int
) -> Annotated:
    """Write ``out_dir/annotated.mp4`` from ``video`` and ``out_dir/timeline.csv``.

    Raises:
        VideoError: if the video cannot be read again; a
            :class:`~vidfer.errors.QuarantinedVideoError` if its worker crashed or overran its
            limits.
    """
    overlay = read_overlay(out_dir / "timeline.csv", classes)
    pieces = max(
        1, math.ceil(int(overlay.frames[-1] + 1 if len(overlay.frames) else 1) / piece_frames)
    )
    with Sandbox(
        write_annotated,
        1,
        timeout_s=limits.decode_timeout_s * (pieces + 1),
        memory_mb=limits.decode_memory_mb,
    ) as sandbox:
        _, outcome = next(sandbox.map([(str(video), str(out_dir / ANNOTATED), overlay)]))
    if isinstance(outcome, Failure):
        raise quarantine_error(video, outcome, limits, f"{outcome.status}: annotating it failed")
    return outcome
