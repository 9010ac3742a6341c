"""``vidfer report FOLDER``: one self-contained ``report.html`` of a run, experiment, fusion or
prediction folder.

The kind of folder is read from what it holds (first match):

- ``experiment.json``: an experiment (``vidfer experiment``): protocol, fold table with mean ±
  standard error, then every fold's run;
- ``summary.json`` and ``timeline.csv``: a prediction (``vidfer predict``);
- ``comparison.json``: a fusion (``vidfer fuse``);
- ``config.yaml``, ``settings.json``, ``metrics.jsonl`` or an ``eval_<split>/`` folder: a run
  (``vidfer train``, ``train-frames``, ``video-attention``).

Plots are PNGs embedded as ``data:`` URLs and the style sheet is inline: the file opens anywhere,
offline, on its own. What the folder lacks is said in a note where it would be, never made up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vidfer.errors import CheckpointError
from vidfer.io.atomic import atomic_write_text
from vidfer.viz.report_folders import experiment_sections, fusion_sections, prediction_sections
from vidfer.viz.report_html import Section, page
from vidfer.viz.report_sections import run_sections

REPORT_NAME = "report.html"

_BUILDERS: dict[str, Callable[[Path], list[Section]]] = {
    "experiment": experiment_sections,
    "prediction": prediction_sections,
    "fusion": fusion_sections,
    "run": run_sections,
}


def folder_kind(folder: Path) -> str:
    """``experiment``, ``prediction``, ``fusion`` or ``run`` (see the module docstring).

    Raises:
        CheckpointError: if ``folder`` does not exist or is none of these.
    """
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder}: no such folder; pass a run, experiment or prediction folder"
        )
    if (folder / "experiment.json").exists():
        return "experiment"
    if (folder / "summary.json").exists() and (folder / "timeline.csv").exists():
        return "prediction"
    if (folder / "comparison.json").exists():
        return "fusion"
    markers = ("config.yaml", "settings.json", "metrics.jsonl")
    if any((folder / name).exists() for name in markers) or any(folder.glob("eval_*/")):
        return "run"
    raise CheckpointError(
        f"{folder}: not a vidfer run, experiment, fusion or prediction folder (no config.yaml, "
        "experiment.json, comparison.json or summary.json); pass the --out folder of "
        "'vidfer train', 'experiment', 'fuse' or 'predict'"
    )


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of the folder ``path``.

    Args:
        path: A run, experiment, fusion or prediction folder.
        out: The HTML file to write (default ``path/report.html``), written atomically.

    Returns:
        The written file.

    Raises:
        CheckpointError: if ``path`` is not such a folder.
        ConfigError: if one of its files is malformed (the message names it).
    """
    folder = Path(path)
    kind = folder_kind(folder)
    sections = _BUILDERS[kind](folder)
    target = Path(out) if out is not None else folder / REPORT_NAME
    lead = f"{kind.capitalize()} folder {folder.resolve()}"
    atomic_write_text(
        target, page(f"vidfer {kind} report: {folder.resolve().name}", lead, sections)
    )
    return target
