"""``vidfer fuse``: decision-level fusion of trained runs, with a report next to each single run.

Methods (scores are each run's per-video class probabilities, :mod:`vidfer.fusion.predictions`):

* ``search``: per-run, per-class weights found by Kahou's random search
  (:mod:`vidfer.fusion.random_search`) on ``search_split``, which must be a split none of the runs
  trained or early-stopped on (:mod:`vidfer.fusion.provenance` checks each run's ``videos.json``;
  Kahou: "random search would assign high weights to the over-fitters"); ``train`` is refused,
  and ``test`` too unless ``search_on_test`` says the user means it (the report's first line
  then says so);
* ``weights``: fixed per-run weights (Xu et al.: 0.5, 0.25, 0.25), normalised to sum 1;
* ``mean``: equal weights; ``sci``: per video, the SCI-weighted average of the runs (eq. 6 of
  Sun et al.); ``max``: the per-class maximum over the runs;
* ``network``: feature-level fusion (:mod:`vidfer.fusion.network`, Kahou §5.1): an MLP on the
  runs' video-level features, trained on ``train``, stopped early on ``search_split``.

Output folder::

    OUT/fusion.json          warnings (as in comparison.md), method, runs, classes, weights (per
                             run and class), search record, runs whose overlap was not checked
    OUT/eval_<split>/        predictions.csv, metrics.json, confusion.csv, confusion.png (fused)
    OUT/comparison.json      per split: accuracy, mean class accuracy, per-class accuracy and
                             confusion matrix of every run and of the fusion
    OUT/comparison.md        the same as tables (first lines: a warning when the fusion was
                             learned on ``test`` or on a split some runs early-stopped on)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vidfer.device import resolve_device
from vidfer.errors import ConfigError
from vidfer.evaluation.decision import max_fusion, sci_fusion
from vidfer.evaluation.evaluate import EvalOutcome, write_evaluation
from vidfer.evaluation.metrics import classification_metrics
from vidfer.fusion.network import NetworkSettings, run_video_features, train_fusion_network
from vidfer.fusion.predictions import Aligned, align, read_predictions
from vidfer.fusion.provenance import check_unseen, same_classes, same_manifest
from vidfer.fusion.random_search import SearchSettings, fuse, random_search
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.io.run_folder import RunVideos
from vidfer.training.sequences import LabelledSequence, score_sequences

Method = Literal["search", "weights", "mean", "sci", "max", "network"]
METHODS: tuple[str, ...] = ("search", "weights", "mean", "sci", "max", "network")
LEARNING: tuple[str, ...] = ("search", "network")
"""The methods that learn on ``search_split``."""
ON_TEST = (
    "WARNING: the fusion was learned on the test split (--search-on-test): its test accuracy "
    "is optimistic, not a held-out result."
)
"""The first line of the report of a fusion learned on ``test``."""
ON_STOPPING = (
    "WARNING: the fusion was learned on videos that {runs} early-stopped on "
    "(--search-on-stopping-split): its accuracy on that split is optimistic."
)
"""The first line of the report of a fusion learned on a split some runs stopped on."""


@dataclass(frozen=True)
class FusionSpec:
    """What to fuse and how.

    Attributes:
        runs: The run folders.
        method: One of :data:`METHODS`.
        weights: Per-run weights for ``weights``.
        search_split: Split the ``search`` method learns its weights on (not ``train``).
        search_on_test: Allow ``search_split`` ``test`` (the report then says so first).
        search_on_stopping: Allow runs that early-stopped (but did not train) on
            ``search_split`` (Kahou et al.'s protocol; the report then says so first).
        eval_splits: Splits to fuse and report.
        search: Iteration counts and seed of the random search.
        network: Training of the feature-fusion network.
    """

    runs: list[Path]
    method: Method = "search"
    weights: list[float] | None = None
    search_split: str = "val"
    search_on_test: bool = False
    search_on_stopping: bool = False
    eval_splits: tuple[str, ...] = ("val", "test")
    search: SearchSettings = field(default_factory=SearchSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)

    def check(self) -> None:
        """Raise ConfigError naming the first invalid choice."""
        if len(self.runs) < 2:
            raise ConfigError("fuse: give at least two runs")
        if self.method not in METHODS:
            raise ConfigError(f"fuse: method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.method == "weights":
            if self.weights is None or len(self.weights) != len(self.runs):
                raise ConfigError(f"fuse: --weights needs one weight per run ({len(self.runs)})")
            if min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ConfigError("fuse: weights must be non-negative with a positive sum")
        if self.method in LEARNING and self.search_split == "train":
            raise ConfigError(
                "fuse: the runs were trained on 'train'; searching weights there favours the "
                "over-fitters. Search on a split they were not trained on: --search-split val"
            )
        if self.method in LEARNING and self.search_split == "test" and not self.search_on_test:
            raise ConfigError(
                "fuse: --search-split test learns the fusion on the videos it is tested on; "
                "search on val, or pass --search-on-test if you mean it (the report says so)"
            )
        if not self.eval_splits:
            raise ConfigError("fuse: give at least one split to evaluate")


def _fused(method: str, weights: np.ndarray | None, runs: Aligned) -> np.ndarray:
    """Fused probabilities ``(N, K)`` of the runs present for each video."""
    if method == "sci":
        # An absent run scores uniform: SCI 0, so it gets no weight (eq. 6).
        uniform = np.full_like(runs.scores, 1.0 / runs.scores.shape[2])
        scores = np.where(runs.present[:, :, None], runs.scores, uniform)
        fused = sci_fusion(torch.from_numpy(scores).permute(1, 0, 2), dim=1).numpy()  # (N, M, K)
    elif method == "max":  # an absent run scores 0
        fused = max_fusion(torch.from_numpy(runs.scores), dim=0).numpy()
    else:
        assert weights is not None
        fused = fuse(weights, runs.scores, runs.present)
    return fused / np.maximum(fused.sum(axis=1, keepdims=True), 1e-12)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("count", "accuracy", "mean_class_accuracy", "per_class_accuracy", "confusion")
    return {key: metrics[key] for key in keep}


def _table(comparison: dict[str, dict[str, Any]], classes: Sequence[str]) -> str:
    lines = []
    for split, rows in comparison.items():
        lines += [
            f"## {split}",
            "",
            "| model | accuracy | mean class accuracy | " + " | ".join(classes) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in classes) + " |",
        ]
        for name, row in rows.items():
            per_class = " | ".join(f"{row['per_class_accuracy'][c]:.3f}" for c in classes)
            lines.append(
                f"| {name} | {row['accuracy']:.3f} | {row['mean_class_accuracy']:.3f} | "
                f"{per_class} |"
            )
        lines.append("")
    return "\n".join(lines)


def _network(spec: FusionSpec, folder: Path, num_classes: int) -> dict[str, np.ndarray]:
    """Train the feature-fusion network; its probabilities ``(K,)`` of every video it can score
    (those every run has features for)."""
    device = resolve_device("auto")
    runs = [run_video_features(run, device) for run in spec.runs]
    shared = [v for v in runs[0].features if all(v in r.features for r in runs[1:])]

    def videos(split: str) -> list[LabelledSequence]:
        chosen = [v for v in shared if runs[0].splits[v] == split]
        # Each video: the runs' features side by side, as one step (1, sum D).
        return [
            LabelledSequence(
                v, runs[0].labels[v], np.concatenate([r.features[v] for r in runs])[None]
            )
            for v in chosen
        ]

    train, monitor = videos("train"), videos(spec.search_split)
    if not train or not monitor:
        raise ConfigError(
            f"fuse --method network: needs train and {spec.search_split} videos with features "
            "from every run"
        )
    dims = [len(next(iter(r.features.values()))) for r in runs]
    net = train_fusion_network(dims, train, monitor, num_classes, spec.network, folder, device)
    scored = [v for split in spec.eval_splits for v in videos(split)]
    outcome = score_sequences(net, scored, device)
    return dict(zip(outcome.video_ids, outcome.probabilities, strict=True))


def _search_provenance(
    spec: FusionSpec, records: Sequence[RunVideos | None]
) -> tuple[list[str], list[str]]:
    """Check that no run trained (or, unless allowed, early-stopped) on ``search_split``; the
    report's warnings (its first lines) and the runs whose overlap was not checked (no
    ``videos.json``)."""
    on_split = [read_predictions(run, spec.search_split) for run in spec.runs]
    found = check_unseen(
        spec.runs,
        records,
        spec.search_split,
        {video for run in on_split for video in run.video_ids},
        allow_stopping=spec.search_on_stopping,
    )
    warnings = [ON_TEST] if spec.search_split == "test" else []
    if found.stopped_on:
        warnings.append(ON_STOPPING.format(runs=", ".join(found.stopped_on)))
    return warnings, found.unchecked


def _method_weights(
    spec: FusionSpec, classes: Sequence[str], record: dict[str, Any]
) -> np.ndarray | None:
    """Per-run, per-class weights ``(M, K)`` of the weighted methods (``None`` for the others);
    adds the search's record to ``record``."""
    models = len(spec.runs)
    if spec.method == "search":
        searched = align([read_predictions(run, spec.search_split) for run in spec.runs])
        result = random_search(searched.scores, searched.labels, spec.search, searched.present)
        record["search"] = {
            "split": spec.search_split,
            "accuracy": result.accuracy,
            "evaluations": result.evaluations,
            "history": result.history,
            "settings": asdict(spec.search),
        }
        return result.weights
    if spec.method == "weights":
        assert spec.weights is not None
        given = np.asarray(spec.weights, dtype=float) / sum(spec.weights)
        return np.repeat(given[:, None], len(classes), axis=1)  # (M,) -> (M, K)
    if spec.method == "mean":
        return np.full((models, len(classes)), 1.0 / models)
    return None


def _compare_split(
    spec: FusionSpec,
    split: str,
    classes: Sequence[str],
    fusion: np.ndarray | dict[str, np.ndarray] | None,
    folder: Path,
) -> dict[str, Any]:
    """Fuse one split, write its ``eval_<split>/``; every run's and the fusion's metrics.

    ``fusion`` is the weights ``(M, K)`` of a weighted method, the network's probabilities per
    video (``network``), or ``None`` (``sci``, ``max``).
    """
    runs = align([read_predictions(run, split) for run in spec.runs])
    labels = runs.labels
    if isinstance(fusion, dict):
        lacking = [v for v in runs.video_ids if v not in fusion]
        if lacking:
            raise ConfigError(f"fuse --method network: no features of every run for {lacking[:3]}")
        fused = np.stack([fusion[v] for v in runs.video_ids])
    else:
        fused = _fused(spec.method, fusion, runs)
    outcome = EvalOutcome(
        loss=float(-np.log(np.maximum(fused[np.arange(len(labels)), labels], 1e-12)).mean()),
        probabilities=fused,
        labels=labels,
        video_ids=runs.video_ids,
    )
    rows = {  # each run on the videos it has a prediction for
        str(run): _summary(classification_metrics(labels[has], s[has].argmax(axis=1), classes))
        for run, s, has in zip(spec.runs, runs.scores, runs.present, strict=True)
    }
    label = f"fusion ({spec.method})"
    if spec.method == "search" and split == spec.search_split:
        label += " [weights searched on this split]"
    rows[label] = _summary(write_evaluation(folder / f"eval_{split}", outcome, classes))
    return rows


def fuse_runs(spec: FusionSpec, out: str | Path) -> dict[str, Any]:
    """Fuse the runs and write ``out`` (see the module docstring).

    Returns:
        The comparison: per split, every run's and the fusion's metrics. ``OUT/fusion.json``
        lists under ``warnings`` what the report's first lines say (a fusion learned on
        ``test``, or on a split some runs early-stopped on).

    Raises:
        ConfigError: on bad settings, runs whose classes, manifests, videos or labels differ,
            or runs that trained or early-stopped on the search split
            (:mod:`vidfer.fusion.provenance`).
    """
    spec.check()
    records = same_classes(spec.runs)
    classes = read_predictions(spec.runs[0], spec.eval_splits[0]).classes
    names = [str(run) for run in spec.runs]
    warnings: list[str] = []
    unchecked: list[str] | None = None  # runs without videos.json: overlap not checked
    if spec.method in LEARNING:
        warnings, unchecked = _search_provenance(spec, records)
    same_manifest(spec.runs, records)  # after: a run trained on the split is named as such
    record: dict[str, Any] = {"warnings": warnings} if warnings else {}
    record.update(method=spec.method, runs=names, classes=classes)
    if unchecked is not None:
        record["unchecked_runs"] = unchecked
    weights = _method_weights(spec, classes, record)
    if weights is not None:
        record["weights"] = {
            name: dict(zip(classes, map(float, row), strict=True))
            for name, row in zip(names, weights, strict=True)
        }
    folder = Path(out)
    fusion: np.ndarray | dict[str, np.ndarray] | None = weights
    if spec.method == "network":
        fusion = _network(spec, folder, len(classes))
        record["network"] = asdict(spec.network)
    comparison = {
        split: _compare_split(spec, split, classes, fusion, folder) for split in spec.eval_splits
    }
    atomic_write_json(folder / "fusion.json", record)
    atomic_write_json(folder / "comparison.json", comparison)
    table = _table(comparison, classes)
    atomic_write_text(folder / "comparison.md", "".join(f"{w}\n\n" for w in warnings) + table)
    return comparison
