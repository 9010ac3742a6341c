"""``vidfer experiment``: train and test one run per fold of a protocol, and aggregate.

Layout of an experiment folder::

    EXP/experiment.json              the protocol, each finished fold, mean ± s.e. over the
                                     folds (summary: UAR, WAR, ...; per_class_recall: each
                                     class's recall) and the metrics of all test videos of a
                                     repeat together (pooled), so far
    EXP/folds/<name>/manifest.csv    the fold's videos, split column train/val/test (a fold
                                     tested on its validation videos lists them once, as val,
                                     and its eval_test/ is a copy of eval_val/)
    EXP/folds/<name>/...             an ordinary run folder (config.yaml, metrics.jsonl,
                                     checkpoints/, eval_val/, eval_test/, ...)
    EXP/folds/<name>/fold.json       the fold's entry of experiment.json: written last, so a
                                     fold with it is finished and never re-run

Every fold trains with :func:`vidfer.pipelines.train` (any model family: clip models,
frame pipelines, the sparse auto-encoder), on the same prepared store as a plain run of the
config: videos are decoded once for all folds. A fold interrupted mid-training resumes from its
last checkpoint. ``experiment.json`` is rewritten atomically after every fold, so a partial
experiment is readable.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidfer.config import ProtocolConfig, RunConfig, config_to_dict, load_config
from vidfer.data.manifest import Manifest, ManifestRow, manifest_csv, read_manifest
from vidfer.errors import ConfigError
from vidfer.evaluation.metrics import (
    HEADLINE_METRICS,
    SUMMARY_METRICS,
    classification_metrics,
    summarise,
    summarise_per_class,
    with_aliases,
)
from vidfer.evaluation.protocols import Fold, make_folds
from vidfer.fusion.predictions import read_predictions
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.io.run_folder import RunDir
from vidfer.pipelines import evaluate_run, resolve_config, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentResult:
    """What :func:`run_experiment` did.

    Attributes:
        folder: The experiment folder.
        record: The content of ``experiment.json``.
        trained: Folds trained by this call.
        reused: Folds already finished before it.
    """

    folder: Path
    record: dict[str, Any]
    trained: list[str]
    reused: list[str]


def _manifests(config: RunConfig, spec: ProtocolConfig, config_path: Path) -> list[Manifest]:
    """The config's manifest, or the protocol's own list (relative to the config file)."""
    data = config.data
    first = read_manifest(data.manifest, root=data.dataset_root, classes=data.classes)
    if spec.manifests is None:
        return [first]
    paths = [path if path.is_absolute() else config_path.parent / path for path in spec.manifests]
    # Every fold scores the same classes: the first manifest's (or data.classes).
    chosen = read_manifest(paths[0], root=data.root, classes=data.classes or first.classes)
    return [chosen] + [
        read_manifest(path, root=data.root, classes=chosen.classes) for path in paths[1:]
    ]


def _row(row: ManifestRow, split: str, root: Path) -> dict[str, str]:
    """A manifest row of a fold (the same video, its fold split)."""
    fields = {"path": row.rel_path, "label": row.label, "split": split, "video_id": row.video_id}
    if row.subject:
        fields["subject"] = row.subject
    if row.start is not None:
        fields["start"] = repr(row.start)
    if row.end is not None:
        fields["end"] = repr(row.end)
    if row.frame_labels is not None:
        fields["frame_labels"] = row.frame_labels.relative_to(root.resolve()).as_posix()
    return fields


def _fold_manifest(fold: Fold, root: Path) -> str:
    """The fold's manifest; test rows that are the validation rows are listed once, as val."""
    splits = ("train", "val") if fold.tests_on_val else ("train", "val", "test")
    return manifest_csv(
        [_row(row, split, root) for split in splits for row in getattr(fold, split)]
    )


def _fold_config(
    config: RunConfig, manifest: Path, root: Path, classes: Sequence[str], repeat: int
) -> RunConfig:
    """The config of one fold's run: its manifest, the dataset's root, classes and store."""
    data = config.data.model_copy(
        update={
            "manifest": manifest.absolute(),
            "root": root.absolute(),
            "store": config.data.store_root.absolute(),  # one store for every fold
            "classes": list(classes),
        }
    )
    return config.model_copy(update={"data": data, "seed": config.seed + repeat, "protocol": None})


def _test_metrics(folder: Path) -> dict[str, Any]:
    """The fold's ``eval_test/metrics.json`` (evaluating the test rows when it is missing)."""
    path = folder / "eval_test" / "metrics.json"
    if not path.exists():
        return evaluate_run(folder, "test")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _headline(
    labels: Sequence[int] | np.ndarray, probabilities: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """``count`` and the summary metrics of some scored videos."""
    metrics = classification_metrics(labels, probabilities.argmax(axis=1), classes, probabilities)
    return {key: metrics[key] for key in ("count", *SUMMARY_METRICS)}


def _person_subsets(fold: Fold, folder: Path) -> dict[str, dict[str, Any]] | None:
    """Metrics of the test videos of persons seen in training (person-specific) and of the
    others (person-independent), when the test rows hold both kinds (GEMEP-FERA's PS/PI)."""
    if fold.test_subjects is None:
        return None
    seen = {row.subject for row in (*fold.train, *fold.val)}
    subject = {row.video_id: row.subject for row in fold.test}
    scored = read_predictions(folder, "test")
    known = np.array([subject[video] in seen for video in scored.video_ids])
    if known.all() or not known.any():
        return None
    return {
        name: _headline(scored.labels[chosen], scored.probabilities[chosen], scored.classes)
        for name, chosen in (("person_specific", known), ("person_independent", ~known))
    }


def _pooled(
    finished: Sequence[tuple[int, Path]], classes: Sequence[str]
) -> dict[str, dict[str, float | int]]:
    """The summary metrics of all test videos of a repeat scored together (one ROC over every
    fold: what leave-one-subject-out needs when a subject shows one class), mean ± s.e. over
    the repeats."""
    per_repeat = []
    for repeat in sorted({repeat for repeat, _ in finished}):
        scored = [read_predictions(folder, "test") for r, folder in finished if r == repeat]
        labels = np.concatenate([s.labels for s in scored])
        probabilities = np.concatenate([s.probabilities for s in scored])  # (N, K)
        per_repeat.append(_headline(labels, probabilities, classes))
    return summarise(per_repeat)


def _record(
    config_path: Path,
    spec: ProtocolConfig,
    entries: list[dict[str, Any]],
    pooled: dict[str, dict[str, float | int]] | None = None,
) -> dict[str, Any]:
    return {
        "config": str(config_path),
        "protocol": {
            "name": spec.name,
            "folds": spec.fold_count,
            "repeats": spec.repeats,
            "seed": spec.seed,
        },
        "metric_names": list(HEADLINE_METRICS),
        "folds": entries,
        "summary": summarise([entry["metrics"] for entry in entries]),
        "per_class_recall": summarise_per_class(entries),
        "pooled": pooled or {},
    }


def _check_same_experiment(path: Path, fresh: dict[str, Any]) -> None:
    if not path.exists():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    for key in ("config", "protocol"):
        if old.get(key) != fresh[key]:
            raise ConfigError(
                f"{path}: made with {key} {old.get(key)}, not {fresh[key]}; "
                "choose another --out folder"
            )


def _check_same_fold(folder: Path, manifest: str, config: RunConfig) -> None:
    """A fold folder left by an earlier call must hold this fold, with this config."""
    written = folder / "manifest.csv"
    if written.exists() and written.read_text(encoding="utf-8") != manifest:
        raise ConfigError(
            f"{written}: the fold's videos differ from this protocol's; choose another --out"
        )
    run = RunDir(folder)
    resolved = config_to_dict(resolve_config(config))
    if run.config_path.exists() and config_to_dict(run.config()) != resolved:
        raise ConfigError(
            f"{run.config_path}: the fold was trained with another config; "
            "choose another --out folder or restore the config"
        )


def _finished_entry(marker: Path) -> dict[str, Any]:
    """The entry of a fold finished earlier (``fold.json``), with the metric aliases (UAR, WAR,
    per-class recall) of a fold finished before they existed."""
    entry: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
    entry["metrics"] = {
        name: value
        for name, value in with_aliases(entry.get("metrics") or {}).items()
        if name in SUMMARY_METRICS
    }
    if "per_class_recall" not in entry:
        metrics = _test_metrics(marker.parent)
        entry["per_class_recall"] = with_aliases(metrics).get("per_class_recall")
    return entry


def _run_fold(fold: Fold, folder: Path, manifest: str, config: RunConfig) -> dict[str, Any]:
    """Train (or resume) and test one fold; returns its entry, also written to fold.json."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "manifest.csv", manifest)
    run = RunDir(folder)
    resume = run.checkpoint("last").exists()
    log.info(
        "%s: %s (%d train, %d val, %d test videos)",
        fold.name,
        "resuming" if resume else "training",
        len(fold.train),
        len(fold.val),
        len(fold.test),
    )
    train(config, folder, resume=resume)
    if fold.tests_on_val:
        # Scored on its stopping partition (Kahou et al.'s validation accuracies).
        shutil.copytree(folder / "eval_val", folder / "eval_test", dirs_exist_ok=True)
    metrics = with_aliases(_test_metrics(folder))
    entry: dict[str, Any] = {
        "name": fold.name,
        "run": f"folds/{fold.name}",
        "train": len(fold.train),
        "val": len(fold.val),
        "test": len(fold.test),
        "test_subjects": fold.test_subjects,
        "metrics": {name: metrics.get(name) for name in SUMMARY_METRICS},
        "per_class_recall": metrics.get("per_class_recall"),
    }
    subsets = _person_subsets(fold, folder)
    if subsets is not None:
        entry["subsets"] = subsets
    atomic_write_json(folder / "fold.json", entry)
    return entry


def run_experiment(
    config_path: str | Path,
    out: str | Path,
    *,
    protocol: ProtocolConfig | None = None,
    overrides: Sequence[str] = (),
) -> ExperimentResult:
    """Run every fold of a protocol that is not finished yet, and aggregate.

    Args:
        config_path: The run config (YAML); its ``protocol`` section is used unless ``protocol``
            is given.
        out: The experiment folder.
        protocol: The protocol (overrides the config's section).
        overrides: ``section.key=value`` config overrides (as ``vidfer train --set``).

    Returns:
        What was run; ``record`` is ``experiment.json``.

    Raises:
        ConfigError: if there is no protocol, the manifest does not fit it, or ``out`` holds an
            experiment of another config or protocol.
    """
    path = Path(config_path).absolute()
    config = load_config(path, list(overrides))
    spec = protocol or config.protocol
    if spec is None:
        raise ConfigError(f"{path}: no protocol; add a 'protocol:' section or pass --protocol NAME")
    manifests = _manifests(config, spec, path)
    folds = make_folds(manifests, spec)
    classes = manifests[0].classes
    roots = [manifest.root for manifest in manifests]
    experiment = Path(out)
    record_path = experiment / "experiment.json"
    record = _record(path, spec, [])
    _check_same_experiment(record_path, record)

    entries: list[dict[str, Any]] = []
    finished: list[tuple[int, Path]] = []
    trained: list[str] = []
    reused: list[str] = []
    for number, fold in enumerate(folds):
        # official: fold k of each repeat comes from manifest k; the others have one manifest.
        root = roots[number % len(roots)]
        folder = experiment / "folds" / fold.name
        manifest = _fold_manifest(fold, root)
        fold_config = _fold_config(config, folder / "manifest.csv", root, classes, fold.repeat)
        _check_same_fold(folder, manifest, fold_config)
        marker = folder / "fold.json"
        if marker.exists():
            entries.append(_finished_entry(marker))
            reused.append(fold.name)
        else:
            entries.append(_run_fold(fold, folder, manifest, fold_config))
            trained.append(fold.name)
        finished.append((fold.repeat, folder))
        record = _record(path, spec, entries, _pooled(finished, classes))
        atomic_write_json(record_path, record)
    return ExperimentResult(folder=experiment, record=record, trained=trained, reused=reused)
