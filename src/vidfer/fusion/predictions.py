"""The common prediction format that fusion reads: per-video class probabilities of a run.

Every run folder (3D model, frame pipeline, FstCN, ...) holds, per evaluated split,
``eval_<split>/predictions.csv`` with the columns ``video_id,label,prediction,p_<class>...``
(:func:`vidfer.evaluation.evaluate.write_evaluation`). :func:`read_predictions` reads it back
(evaluating the split first when the run has not yet), and :func:`align` checks that several runs
describe the same videos with the same labels and classes, refusing any mismatch with a message
that names the runs and the first differing videos.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidfer.errors import ConfigError


@dataclass(frozen=True)
class RunPredictions:
    """One run's video-level probabilities on one split.

    Attributes:
        run: The run folder.
        split: The split.
        classes: Class names, in column order.
        video_ids: The videos, in row order.
        labels: ``(N,)`` true class indices.
        probabilities: ``(N, K)`` class probabilities.
    """

    run: Path
    split: str
    classes: list[str]
    video_ids: list[str]
    labels: np.ndarray
    probabilities: np.ndarray


def read_predictions(run: str | Path, split: str) -> RunPredictions:
    """Read ``RUN/eval_<split>/predictions.csv``, evaluating the split first if it is missing.

    Raises:
        ConfigError: if the file is malformed (naming the line) or disagrees with the run's
            ``classes.json``.
        CheckpointError: if ``run`` is not a trained run.
    """
    folder = Path(run)
    path = folder / f"eval_{split}" / "predictions.csv"
    if not path.exists():
        from vidfer.evaluation.evaluate import evaluate_run

        evaluate_run(folder, split)
    classes = list(json.loads((folder / "classes.json").read_text(encoding="utf-8")))
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        expected = ["video_id", "label", "prediction", *(f"p_{name}" for name in classes)]
        if header != expected:
            raise ConfigError(
                f"{path}: line 1: expected the columns {','.join(expected)} "
                f"(the run's classes.json); re-run 'vidfer evaluate {folder} --split {split}'"
            )
        ids, labels, rows = [], [], []
        for number, row in enumerate(reader, start=2):
            try:
                if len(row) != len(expected) or row[1] not in classes:
                    raise ValueError("wrong number of fields or unknown label")
                rows.append([float(value) for value in row[3:]])
            except ValueError as error:
                raise ConfigError(f"{path}: line {number}: {error}") from None
            ids.append(row[0])
            labels.append(classes.index(row[1]))
    return RunPredictions(folder, split, classes, ids, np.array(labels), np.array(rows))


def align(runs: Sequence[RunPredictions]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The videos of the first run, its labels, and every run's probabilities in that order.

    Returns:
        ``(video_ids, labels (N,), scores (M, N, K))``.

    Raises:
        ConfigError: if the runs differ in classes, videos or labels.
    """
    first = runs[0]
    order = {video: row for row, video in enumerate(first.video_ids)}
    scores = []
    for other in runs:
        if other.classes != first.classes:
            raise ConfigError(
                f"{other.run} has classes {other.classes}, {first.run} has {first.classes}; "
                "fuse runs trained on the same classes"
            )
        missing = sorted(set(first.video_ids) - set(other.video_ids))
        extra = sorted(set(other.video_ids) - set(first.video_ids))
        if missing or extra:
            raise ConfigError(
                f"{other.run} and {first.run} cover different {first.split} videos "
                f"({len(missing)} only in the second, e.g. {missing[:3]}; {len(extra)} only in "
                f"the first, e.g. {extra[:3]}); fuse runs of the same dataset and split"
            )
        rows = np.array([order[video] for video in other.video_ids])
        labels = np.empty_like(other.labels)
        labels[rows] = other.labels
        if not np.array_equal(labels, first.labels):
            wrong = [first.video_ids[i] for i in np.flatnonzero(labels != first.labels)[:3]]
            raise ConfigError(
                f"{other.run} and {first.run} disagree on the labels of {wrong}; "
                "fuse runs of the same manifest"
            )
        aligned = np.empty_like(other.probabilities)
        aligned[rows] = other.probabilities  # (N, K) in the first run's video order
        scores.append(aligned)
    return list(first.video_ids), first.labels, np.stack(scores)  # (M, N, K)
