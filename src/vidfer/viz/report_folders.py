"""The report's sections for prediction, fusion and experiment folders.

- prediction (``vidfer predict``): the video-level result and the per-frame timeline re-drawn
  from ``timeline.csv``;
- fusion (``vidfer fuse``): the fusion's settings and the table of each single run against the
  fused scores (``comparison.json``), then the fused evaluations like a run's;
- experiment (``vidfer experiment``): the protocol, the fold table with a mean ± s.e. row
  (``experiment.json``), then every fold's run sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vidfer.errors import ConfigError
from vidfer.viz.plots import plot_timeline
from vidfer.viz.report_html import Raw, Section, anchor, image, link, note, rendered, table
from vidfer.viz.report_sections import (
    curves_section,
    evaluation_sections,
    floats,
    read_csv,
    read_json,
    run_sections,
    split_order,
)

_SUMMARY_FIELDS = (
    "video",
    "status",
    "reason",
    "label",
    "model",
    "run",
    "frames_decoded",
    "frames_scored",
    "source_fps",
)


def prediction_sections(folder: Path) -> list[Section]:
    """The video label and probabilities (``summary.json``) and the per-frame timeline."""
    summary = read_json(folder / "summary.json")
    rows = [(key, summary[key]) for key in _SUMMARY_FIELDS if summary.get(key) not in (None, "")]
    probabilities = sorted(summary.get("probabilities", {}).items(), key=lambda kv: -kv[1])
    body = table(["field", "value"], rows)
    body = Raw(
        body + table(["class", "video probability"], probabilities)
        if probabilities
        else body + note(f"No video-level probabilities (status {summary.get('status')}).")
    )
    return [Section("Prediction", "prediction", body), _timeline_section(folder, summary)]


def _timeline_section(folder: Path, summary: dict[str, Any]) -> Section:
    path = folder / "timeline.csv"
    header, rows = read_csv(path)
    columns = [k for k, name in enumerate(header) if name.startswith("p_")]
    if header[:2] != ["frame", "time_s"] or not columns:
        raise ConfigError(f"{path}: line 1: expected frame,time_s,...,p_<class>...")
    classes = [header[k].removeprefix("p_") for k in columns]
    times = floats(path, rows, [1])[:, 0]  # (T,)
    probabilities = floats(path, rows, columns, blanks=True)  # (T, K)
    # Frames the model did not score (no face) have empty probabilities: shaded, drawn at 0.
    valid = ~np.isnan(probabilities).any(axis=1)
    probabilities = np.nan_to_num(probabilities)
    label = summary.get("label")
    name = Path(str(summary.get("video", folder.name))).name
    probability = summary.get("probabilities", {}).get(label)
    title = f"{name}: {label} ({probability:.2f})" if label else f"{name}: {summary.get('status')}"
    png = rendered(
        lambda out: plot_timeline(times, probabilities, classes, out, title=title, valid=valid)
    )
    text = f"{int(valid.sum())} of {len(rows)} frame(s) scored; unscored frames are shaded."
    return Section("Per-frame timeline", "timeline", Raw(note(text) + image(png, "timeline")))


def fusion_sections(folder: Path) -> list[Section]:
    """Fusion settings, the single runs against the fusion per split, the fused evaluations."""
    sections = []
    if (folder / "fusion.json").exists():
        record = read_json(folder / "fusion.json")
        rows = [("method", record.get("method")), ("runs", ", ".join(record.get("runs", [])))]
        body = table(["field", "value"], rows)
        weights = record.get("weights") or {}
        if weights:
            classes = record.get("classes", [])
            grid = [(run, *(per[c] for c in classes)) for run, per in weights.items()]
            body = Raw(body + table(["run", *classes], grid, caption="weights per run and class"))
        sections.append(Section("Fusion", "fusion", body))
    comparison = read_json(folder / "comparison.json")
    children = []
    for split in sorted(comparison, key=split_order):
        models = comparison[split]
        first: dict[str, Any] = next(iter(models.values()), {})
        classes = list(first.get("per_class_accuracy", {}))
        rows = [
            (
                name,
                row.get("count"),
                row.get("accuracy"),
                row.get("mean_class_accuracy"),
                *(row.get("per_class_accuracy", {}).get(c) for c in classes),
            )
            for name, row in models.items()
        ]
        header = ["model", "videos", "accuracy", "mean class accuracy", *classes]
        children.append(
            Section(f"Split: {split}", anchor("comparison", split), table(header, rows))
        )
    sections.append(
        Section(
            "Comparison: single runs vs fused",
            "comparison",
            note("Per-class columns: accuracy of each class."),
            children=children,
        )
    )
    if (folder / "metrics.jsonl").exists():  # the feature-fusion network's training
        sections.append(curves_section(folder))
    return sections + evaluation_sections(folder)


def _experiment(folder: Path) -> dict[str, Any]:
    path = folder / "experiment.json"
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("folds"), list):
        raise ConfigError(f"{path}: expected an object with a 'folds' list")
    return record


def _mean_sem(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("mean") is None:
        return "—"
    return f"{entry['mean']:.4f} ± {entry.get('sem') or 0.0:.4f} (n={entry.get('n')})"


def _per_class_recall(record: dict[str, Any]) -> Section | None:
    """Each class's recall in every fold and its mean ± s.e. (None for an experiment recorded
    before per-class recalls were)."""
    summary = record.get("per_class_recall")
    if not summary:
        return None
    folds = record["folds"]
    rows = [
        (
            label,
            *((fold.get("per_class_recall") or {}).get(label) for fold in folds),
            _mean_sem(summary.get(label)),
        )
        for label in summary
    ]
    header = ["class", *(str(fold["name"]) for fold in folds), "mean ± s.e."]
    caption = note("Recall of each class on each fold's test videos; UAR is their mean.")
    return Section("Per-class recall", "per-class-recall", Raw(caption + table(header, rows)))


def experiment_sections(folder: Path) -> list[Section]:
    """The protocol, the fold table with its mean ± standard error row, then each fold's run."""
    record = _experiment(folder)
    protocol = record.get("protocol") or {}
    rows = [("config", record.get("config")), *((key, protocol[key]) for key in protocol)]
    sections = [Section("Protocol", "protocol", table(["field", "value"], rows))]
    names = list(record.get("metric_names") or [])
    header = [
        "fold",
        "train",
        "val",
        "test",
        "test subjects",
        *(n.replace("_", " ") for n in names),
    ]
    folds = record["folds"]
    fold_rows = [
        (
            link(fold["name"], anchor("fold", fold["name"])),
            fold.get("train"),
            fold.get("val"),
            fold.get("test"),
            ", ".join(map(str, fold.get("test_subjects") or [])) or "—",
            *((fold.get("metrics") or {}).get(name) for name in names),
        )
        for fold in folds
    ]
    summary = record.get("summary") or {}
    mean_row = ("mean ± s.e.", "", "", "", "", *(_mean_sem(summary.get(n)) for n in names))
    sections.append(Section("Folds", "folds", table(header, fold_rows, footer=mean_row)))
    recall = _per_class_recall(record)
    if recall is not None:
        sections.append(recall)
    for fold in folds:
        run = folder / str(fold.get("run", ""))
        anchor_id = anchor("fold", fold["name"])
        if not run.is_dir():
            sections.append(
                Section(
                    f"Fold {fold['name']}",
                    anchor_id,
                    note(f"Run folder {fold.get('run')} is missing."),
                    skipped=True,
                )
            )
            continue
        children = run_sections(run, prefix=anchor_id)
        sections.append(
            Section(
                f"Fold {fold['name']}",
                anchor_id,
                note(f"run folder: {fold['run']}"),
                children=children,
            )
        )
    return sections
