"""The kinds of run, one module each, behind one protocol (:class:`base.Pipeline`).

``PIPELINES`` maps a config's kind (:attr:`vidfer.config.RunConfig.kind`) to its pipeline: the one
place where a run's kind selects code. :func:`train` and :func:`evaluate_run` are ``vidfer train``
and ``vidfer evaluate`` for every kind; ``vidfer predict`` scores through :meth:`Pipeline.scorer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidfer.config import RunConfig
from vidfer.config import load_config as read_config
from vidfer.evaluation.evaluate import write_evaluation
from vidfer.io.run_folder import RunDir
from vidfer.pipelines.activity import ActivityPipeline
from vidfer.pipelines.base import Pipeline, Scored, Scorer
from vidfer.pipelines.clip import ClipPipeline
from vidfer.pipelines.frames import FramesPipeline
from vidfer.pipelines.sparse_ae import SparseAEPipeline
from vidfer.training.distributed import check_processes, from_environment
from vidfer.training.trainer import TrainResult, check_run_folder

__all__ = [
    "PIPELINES",
    "Pipeline",
    "Scored",
    "Scorer",
    "TrainResult",
    "evaluate_run",
    "load_config",
    "pipeline_for",
    "resolve_config",
    "train",
]

PIPELINES: dict[str, Pipeline] = {
    pipeline.kind: pipeline
    for pipeline in (ClipPipeline(), FramesPipeline(), SparseAEPipeline(), ActivityPipeline())
}
"""Every kind of run's pipeline, by kind."""


def pipeline_for(config: RunConfig) -> Pipeline:
    """The pipeline of a config's kind of run."""
    return PIPELINES[config.kind]


def resolve_config(config: RunConfig) -> RunConfig:
    """The config as a run folder records it: what its kind derives (e.g. a clip model's input
    normalisation from its initial weights) filled in."""
    return pipeline_for(config).resolved(config)


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config and resolve it as a run will (``vidfer.load_config``).

    The options it does not write take what its kind derives (a clip model's input contract:
    the normalisation, frame side and clip length of its architecture and initial weights), and
    an input a fixed-length model cannot take is an error here, not at training.

    Args:
        path: The YAML file.
        overrides: ``section.key=value`` strings, applied before validation.

    Raises:
        ConfigError: on an invalid option, naming it (e.g. ``sampler.clip_len`` or
            ``transforms.size`` and what the model takes).
        CheckpointError: if ``model.weights`` names a file or run that cannot be read.
    """
    return resolve_config(read_config(path, overrides))


def train(config: RunConfig, out: str | Path, *, resume: bool = False) -> TrainResult:
    """Train a run of any kind as configured, writing everything into the run folder ``out``.

    Args:
        config: The run config.
        out: The run folder.
        resume: Continue from ``out/checkpoints/last.pt``; the config must be the run's own
            (a clip run resumes exactly; the other kinds fit again from their cached features).

    Raises:
        ConfigError: if there is no training video, on a config/run mismatch, or under torchrun
            with a setting or kind that several processes cannot train (only 3D clip runs are
            distributed).
        CheckpointError: if ``resume`` is asked without a checkpoint.
    """
    place = from_environment()
    if place.active:  # every process refuses what several cannot train, before any writes
        check_processes(config, place.world_size)
    run = RunDir(out)
    config = resolve_config(config)
    check_run_folder(config, run, resume=resume)
    return pipeline_for(config).train(config, run, resume=resume)


def evaluate_run(run_folder: str | Path, split: str = "test") -> dict[str, Any]:
    """Evaluate a trained run of any kind on one split and write ``RUN/eval_<split>/``.

    Returns:
        The metrics with class names.

    Raises:
        ConfigError: if the split has no usable video.
        CheckpointError: if the folder is not a trained run.
    """
    run = RunDir(run_folder)
    outcome = pipeline_for(run.config()).evaluate(run, split)
    return write_evaluation(run.folder / f"eval_{split}", outcome, run.classes())
