"""The report's sections for a run folder, one function per section.

Each function reads what a run folder holds (:mod:`vidfer.io.run_folder`) and returns a
:class:`~vidfer.viz.report_html.Section`; when the file it shows is absent, the section says so
(:func:`~vidfer.viz.report_html.skipped`) instead of showing anything made up. Plots are re-drawn
from the data files with the helpers of :mod:`vidfer.viz.plots`; figures that need the videos
(sampling maps, attention maps) are embedded as the run wrote them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import yaml
from sklearn.metrics import auc, roc_curve

from vidfer.errors import ConfigError
from vidfer.viz.plots import plot_confusion, plot_learning_curves, save_figure
from vidfer.viz.report_html import (
    Raw,
    Section,
    anchor,
    image,
    note,
    paragraph,
    preformatted,
    rendered,
    skipped,
    table,
)

_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def read_json(path: Path) -> Any:
    """The JSON document in ``path``.

    Raises:
        ConfigError: if the file is not valid JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error}); re-create the file") from error


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ConfigError(f"{path}: empty file; re-create it")
    return rows[0], rows[1:]


def floats(
    path: Path, rows: list[list[str]], columns: Sequence[int], *, blanks: bool = False
) -> np.ndarray:
    """The ``columns`` of the CSV ``rows`` of ``path`` as floats ``(N, len(columns))``.

    Args:
        path: The file (named in errors).
        rows: Its rows after the header.
        columns: Column indices.
        blanks: Read empty cells as NaN instead of refusing them.

    Raises:
        ConfigError: naming the line of a missing or non-numeric value.
    """
    values = []
    for line, row in enumerate(rows, start=2):
        try:
            cells = [row[c] for c in columns]
            values.append([np.nan if blanks and not v else float(v) for v in cells])
        except (ValueError, IndexError) as error:
            raise ConfigError(
                f"{path}:{line}: missing or not a number ({error}); re-create the file"
            ) from error
    return np.asarray(values, dtype=float).reshape(len(rows), len(columns))


def compact(value: Any) -> str:
    """A config value on one line: ``key=value`` pairs, unset (None, empty) values left out."""
    if isinstance(value, dict):
        pairs = [f"{k}={compact(v)}" for k, v in value.items() if v not in (None, {}, [])]
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(compact(v) for v in value) + "]"
    return str(value)


def config_section(folder: Path, prefix: str = "") -> Section:
    """The run's settings: ``config.yaml`` (``vidfer train``) or ``settings.json`` (frame CNN and
    video-attention runs), one line per section, and the whole file."""
    title, anchor_id = "Configuration", anchor(prefix, "configuration")
    config_path, settings_path = folder / "config.yaml", folder / "settings.json"
    if config_path.exists():
        text = config_path.read_text(encoding="utf-8")
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{config_path}: not valid YAML ({error})") from error
        source = "config.yaml"
    elif settings_path.exists():
        values = read_json(settings_path)
        text, source = json.dumps(values, indent=2), "settings.json"
    else:
        return skipped(title, anchor_id, "No config.yaml or settings.json in this folder.")
    if not isinstance(values, dict):
        raise ConfigError(f"{folder / source}: expected a mapping of sections")
    rows = [(key, compact(value)) for key, value in values.items() if value is not None]
    body = table(["section", "settings"], rows) + preformatted(text, f"the whole {source}")
    return Section(title, anchor_id, Raw(body))


def read_metrics_lines(path: Path) -> list[dict[str, Any]]:
    """The lines of ``metrics.jsonl``; a bad line raises a ConfigError naming it."""
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{number}: not valid JSON ({error})") from error
    return lines


def _best(lines: list[dict[str, Any]], key: str, pick: Any) -> str:
    chosen = [line for line in lines if line.get(key) is not None]
    if not chosen:
        return ""
    line = pick(chosen, key=lambda entry: entry[key])
    return f"{key.replace('_', ' ')} {line[key]:.4f} at epoch {line['epoch']}"


def curves_section(folder: Path, prefix: str = "") -> Section:
    """Loss and accuracy per epoch, re-drawn from ``metrics.jsonl``."""
    title, anchor_id = "Learning curves", anchor(prefix, "learning-curves")
    path = folder / "metrics.jsonl"
    if not path.exists():
        return skipped(title, anchor_id, "No metrics.jsonl: nothing was trained in this folder.")
    # Epoch lines only: a sparse auto-encoder run also logs its auto-encoder's own epochs.
    lines = [
        line
        for line in read_metrics_lines(path)
        if "epoch" in line and ("train_loss" in line or "val_loss" in line)
    ]
    if not lines:
        return skipped(title, anchor_id, "metrics.jsonl holds no epoch with a loss.")
    png = rendered(lambda out: plot_learning_curves(lines, out))
    best = [_best(lines, "val_loss", min), _best(lines, "val_accuracy", max)]
    text = f"{len(lines)} epoch(s)" + "".join(f"; best {item}" for item in best if item) + "."
    return Section(title, anchor_id, Raw(paragraph(text) + image(png, "learning curves")))


def split_order(split: str) -> tuple[int, str]:
    """Sort key of split names: train, val, test, then the others by name."""
    return _SPLIT_ORDER.get(split, len(_SPLIT_ORDER)), split


def evaluation_sections(folder: Path, prefix: str = "") -> list[Section]:
    """One section per ``eval_<split>/`` folder: its metrics, confusion matrix, per-class
    table and ROC curves."""
    splits = sorted(
        (p for p in folder.glob("eval_*") if p.is_dir()),
        key=lambda p: split_order(p.name.removeprefix("eval_")),
    )
    if not splits:
        why = "No eval_<split>/ folder: evaluate the run with 'vidfer evaluate RUN --split test'."
        return [skipped("Evaluation", anchor(prefix, "evaluation"), why)]
    return [_split_section(split, prefix) for split in splits]


def _split_section(folder: Path, prefix: str) -> Section:
    split = folder.name.removeprefix("eval_")
    base = anchor(prefix, "eval", split)
    metrics_path = folder / "metrics.json"
    if metrics_path.exists():
        metrics = read_json(metrics_path)
        rows = [
            (name.replace("_", " "), value)
            for name, value in metrics.items()
            if value is None or isinstance(value, (int, float))
        ]
        body = table(["metric", "value"], rows)
    else:
        body = note("No metrics.json in this split.")
    if (folder / "missing.csv").exists():
        _, missing = read_csv(folder / "missing.csv")
        body = Raw(body + note(f"{len(missing)} video(s) without a prediction (missing.csv)."))
    confusion = _read_confusion(folder / "confusion.csv")
    children = [
        _confusion_section(confusion, base),
        _per_class_section(confusion, base),
        roc_section(folder / "predictions.csv", base),
    ]
    return Section(f"Evaluation: {split}", base, body, children=children)


@dataclass(frozen=True)
class _Confusion:
    classes: list[str]
    counts: np.ndarray  # (K, K) rows: true class, columns: predicted


def _read_confusion(path: Path) -> _Confusion | None:
    if not path.exists():
        return None
    header, rows = read_csv(path)
    counts = floats(path, rows, range(1, len(header))).astype(np.int64)
    if counts.shape != (len(header) - 1, len(header) - 1):
        raise ConfigError(f"{path}: expected a square matrix with one row per class")
    return _Confusion(header[1:], counts)


def _confusion_section(confusion: _Confusion | None, base: str) -> Section:
    title, anchor_id = "Confusion matrix", anchor(base, "confusion")
    if confusion is None:
        return skipped(title, anchor_id, "No confusion.csv in this split.")
    png = rendered(lambda out: plot_confusion(confusion.counts, confusion.classes, out))
    return Section(title, anchor_id, image(png, "confusion matrix"))


def _per_class_section(confusion: _Confusion | None, base: str) -> Section:
    title, anchor_id = "Per-class accuracy", anchor(base, "per-class")
    if confusion is None:
        return skipped(title, anchor_id, "No confusion.csv in this split.")
    support = confusion.counts.sum(axis=1)
    predicted = confusion.counts.sum(axis=0)
    correct = np.diag(confusion.counts)
    rows = [
        (
            name,
            int(support[k]),
            int(correct[k]),
            float(correct[k] / support[k]) if support[k] else None,
            float(correct[k] / predicted[k]) if predicted[k] else None,
        )
        for k, name in enumerate(confusion.classes)
    ]
    header = ["class", "videos", "correct", "accuracy (recall)", "precision"]
    return Section(title, anchor_id, table(header, rows))


def _plot_roc(curves: list[tuple[str, np.ndarray, np.ndarray, float]], path: Path) -> None:
    """ROC curves ``(name, false positive rates, true positive rates, AUC)`` on one axis."""
    figure, axis = plt.subplots(figsize=(5, 4.5))
    for name, fpr, tpr, area in curves:
        axis.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUC {area:.3f})")
    axis.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    axis.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize="small")
    save_figure(figure, path)


def roc_section(path: Path, base: str) -> Section:
    """ROC curves from the class probabilities of ``predictions.csv`` (scikit-learn): the second
    class against the first for two classes, each class against the rest otherwise. A class
    without positive or without negative videos has no curve (said in a note)."""
    title, anchor_id = "ROC curves", anchor(base, "roc")
    if not path.exists():
        return skipped(title, anchor_id, "No predictions.csv in this split.")
    header, rows = read_csv(path)
    classes = [name.removeprefix("p_") for name in header[3:]]
    if header[:3] != ["video_id", "label", "prediction"] or not classes:
        raise ConfigError(f"{path}: line 1: expected video_id,label,prediction,p_<class>...")
    probabilities = floats(path, rows, range(3, len(header)))  # (N, K)
    labels = np.array([row[1] for row in rows])
    tasks = (
        [(f"{classes[1]} vs {classes[0]}", 1)]
        if len(classes) == 2
        else [(f"{name} vs rest", k) for k, name in enumerate(classes)]
    )
    curves, without = [], []
    for name, k in tasks:
        positive = labels == classes[k]
        if positive.all() or not positive.any():
            without.append(classes[k])
            continue
        fpr, tpr, _ = roc_curve(positive, probabilities[:, k])
        curves.append((name, fpr, tpr, float(auc(fpr, tpr))))
    remark = (
        note(
            f"No ROC curve for {', '.join(without)}: the split lacks its positive or negative "
            "videos."
        )
        if without
        else Raw("")
    )
    if not curves:
        return Section(title, anchor_id, remark, skipped=True)
    png = rendered(lambda out: _plot_roc(curves, out))
    areas = table(["curve", "AUC"], [(name, area) for name, _, _, area in curves])
    return Section(title, anchor_id, Raw(image(png, "ROC curves") + areas + remark))


def figure_section(
    folder: Path, files: tuple[str, ...], title: str, why_absent: str, prefix: str = ""
) -> Section:
    """The PNG figures ``files`` that the run wrote (those that exist), embedded as they are."""
    anchor_id = anchor(prefix, title)
    found = [folder / name for name in files if (folder / name).exists()]
    if not found:
        return skipped(title, anchor_id, why_absent)
    body = "".join(paragraph(path.name) + image(path.read_bytes(), path.stem) for path in found)
    return Section(title, anchor_id, Raw(body))


def run_sections(folder: Path, prefix: str = "") -> list[Section]:
    """Every section of a run folder (3D model, frame CNN, frame pipeline, sparse AE, video
    attention), in reading order."""
    sections = [
        config_section(folder, prefix),
        curves_section(folder, prefix),
        *evaluation_sections(folder, prefix),
        figure_section(
            folder,
            ("sampling_maps.png",),
            "Sampling maps",
            "No sampling_maps.png: only the learning samplers (stochastic_softmax, reinforce, "
            "guided) write it.",
            prefix,
        ),
        figure_section(
            folder,
            ("attention_maps.png", "attention_profiles.png"),
            "Attention maps",
            "No attention_maps.png: the model has no attention module (or run "
            "'vidfer attention-maps RUN').",
            prefix,
        ),
    ]
    if (folder / "basis.png").exists():
        sections.append(figure_section(folder, ("basis.png",), "Auto-encoder basis", "", prefix))
    return sections
