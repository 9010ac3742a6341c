"""The common prediction format that fusion reads: per-video class probabilities of a run.

Every run folder (3D model, frame pipeline, FstCN, ...) holds, per evaluated split,
``eval_<split>/predictions.csv`` with the columns ``video_id,label,prediction,p_<class>...``
(:func:`vidfer.evaluation.evaluate.write_evaluation`). :func:`read_predictions` reads it back
(evaluating the split first when the run has not yet), and :func:`align` checks that several runs
describe the same videos with the same labels and classes, refusing any mismatch with a message
that names the runs and the first differing videos.

A run may lack a modality for some videos (e.g. audio, for videos without sound): it then lists
them with the reason in ``eval_<split>/missing.csv`` (``video_id,reason``), and :func:`align`
marks them absent instead of refusing the run; the fusion weighs the runs present.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidfer.errors import ConfigError
from vidfer.pipelines import evaluate_run


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
        missing: Videos of the split the run has no prediction for, with the reason.
    """

    run: Path
    split: str
    classes: list[str]
    video_ids: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    missing: dict[str, str] = field(default_factory=dict)


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
    missing: dict[str, str] = {}
    listed = path.with_name("missing.csv")
    if listed.exists():
        with listed.open(newline="", encoding="utf-8") as handle:
            missing = {row["video_id"]: row["reason"] for row in csv.DictReader(handle)}
    probabilities = np.array(rows).reshape(len(ids), len(classes))
    return RunPredictions(folder, split, classes, ids, np.array(labels), probabilities, missing)


@dataclass(frozen=True)
class Aligned:
    """Several runs' predictions on the same videos.

    Attributes:
        video_ids: The videos (every run's, in first-seen order).
        labels: ``(N,)`` true classes.
        scores: ``(M, N, K)`` probabilities, 0 where a run has no prediction.
        present: ``(M, N)`` True where the run has a prediction.
    """

    video_ids: list[str]
    labels: np.ndarray
    scores: np.ndarray
    present: np.ndarray


def align(runs: Sequence[RunPredictions]) -> Aligned:
    """Every run's probabilities on the same videos, in one order.

    Raises:
        ConfigError: if the runs differ in classes or labels, or a run lacks a video it does
            not declare missing.
    """
    first = runs[0]
    videos: dict[str, int] = {}
    labels: dict[str, int] = {}
    for run in runs:
        if run.classes != first.classes:
            raise ConfigError(
                f"{run.run} has classes {run.classes}, {first.run} has {first.classes}; "
                "fuse runs trained on the same classes"
            )
        for video, label in zip(run.video_ids, run.labels.tolist(), strict=True):
            videos.setdefault(video, len(videos))
            if labels.setdefault(video, label) != label:
                raise ConfigError(
                    f"{run.run} and {first.run} disagree on the labels of {[video]}; "
                    "fuse runs of the same manifest"
                )
    scores = np.zeros((len(runs), len(videos), len(first.classes)))
    present = np.zeros((len(runs), len(videos)), dtype=bool)
    for m, run in enumerate(runs):
        rows = [videos[video] for video in run.video_ids]
        scores[m, rows], present[m, rows] = run.probabilities, True
        lacking = [v for v, row in videos.items() if not present[m, row] and v not in run.missing]
        if lacking:
            raise ConfigError(
                f"{run.run} has no {first.split} prediction for {len(lacking)} video(s) the "
                f"other runs have (e.g. {lacking[:3]}) and does not list them in missing.csv; "
                "fuse runs of the same dataset and split"
            )
    ids = list(videos)
    return Aligned(ids, np.array([labels[v] for v in ids]), scores, present)
