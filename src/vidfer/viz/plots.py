"""Plots written as PNG files: learning curves, confusion matrices, prediction timelines."""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vidfer.io.atomic import atomic_write_bytes


def _figure(size: tuple[float, float]) -> Figure:
    """A new figure drawn with Agg (no pyplot: nothing global, and a faster import)."""
    return Figure(figsize=size)


def save_figure(figure: Figure, path: Path) -> None:
    """Render ``figure`` to PNG and write it atomically, then free it (a pyplot figure too)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")  # loaded by the modules that draw with it
    if pyplot is not None:
        pyplot.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def plot_learning_curves(metrics: Sequence[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch (train and validation when present)."""
    figure = _figure((9, 3.5))
    loss_ax, acc_ax = figure.subplots(1, 2)
    epochs = [line["epoch"] for line in metrics]
    for key, style in (("train", "-o"), ("val", "--s")):
        if any(f"{key}_loss" in line for line in metrics):
            loss_ax.plot(
                epochs, [line.get(f"{key}_loss", np.nan) for line in metrics], style, label=key
            )
            acc_ax.plot(
                epochs, [line.get(f"{key}_accuracy", np.nan) for line in metrics], style, label=key
            )
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for axis in (loss_ax, acc_ax):
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, path)


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: Path) -> None:
    """Confusion matrix: counts, coloured by row-normalised rate."""
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.6 * len(classes)
    figure = _figure((size + 1, size))
    axis = figure.subplots()
    image = axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(confusion):
        axis.text(
            col,
            row,
            str(count),
            ha="center",
            va="center",
            color="white" if rates[row, col] > 0.5 else "black",
        )
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel="predicted", ylabel="true")
    figure.colorbar(image, ax=axis, fraction=0.046)
    save_figure(figure, path)


def plot_timeline(
    times: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    path: Path,
    *,
    title: str = "",
    valid: np.ndarray | None = None,
) -> None:
    """Per-frame class probabilities ``(T, K)`` over time; frames not ``valid`` are shaded."""
    figure = _figure((10, 3.5))
    axis = figure.subplots()
    for k, name in enumerate(classes):
        axis.plot(times, probabilities[:, k], label=name, linewidth=1.5)
    if valid is not None and len(times) and not valid.all():
        step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
        for t in times[~valid]:
            axis.axvspan(t - step / 2, t + step / 2, color="grey", alpha=0.2, linewidth=0)
    axis.set(xlabel="time (s)", ylabel="probability", ylim=(0, 1.02), title=title)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", fontsize="small", ncol=min(len(classes), 4))
    save_figure(figure, path)
