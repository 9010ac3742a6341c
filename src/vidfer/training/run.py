"""Run folders: what ``vidfer train`` writes and what evaluate/predict read back.

Layout::

    RUN/config.yaml            the resolved config (absolute paths)
    RUN/classes.json           class names in score order
    RUN/metrics.jsonl          one line per epoch
    RUN/rejects.jsonl          videos that could not be used, with the reason
    RUN/checkpoints/last.pt    state at the end of the last finished epoch (+ last.json)
    RUN/checkpoints/best.pt    model with the best validation loss (+ best.json)
    RUN/curves.png             learning curves
    RUN/eval_<split>/          predictions.csv, metrics.json, confusion.csv, confusion.png
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from vidfer.config import RunConfig, config_to_dict, load_config
from vidfer.errors import CheckpointError
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.io.checkpoint import load_checkpoint
from vidfer.models import build_pooling, model_from_config
from vidfer.models.base import VideoModel
from vidfer.models.pooling import TemporalPooling

INIT_PARAMS = ("pretrained", "scl_init")
"""Model parameters that only say where the initial weights come from."""


class RunDir:
    """A run folder.

    Args:
        folder: The run folder (created by :meth:`initialise`).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def config_path(self) -> Path:
        """The resolved config."""
        return self.folder / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        """One JSON line per finished epoch."""
        return self.folder / "metrics.jsonl"

    def checkpoint(self, which: str) -> Path:
        """``last`` or ``best`` checkpoint path."""
        return self.folder / "checkpoints" / f"{which}.pt"

    def initialise(self, config: RunConfig, classes: list[str]) -> None:
        """Write the resolved config and the class list."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
        atomic_write_json(self.folder / "classes.json", classes)

    def config(self) -> RunConfig:
        """The run's config.

        Raises:
            CheckpointError: if the folder is not a run folder.
        """
        if not self.config_path.exists():
            raise CheckpointError(
                f"{self.folder}: not a vidfer run folder (no config.yaml); "
                "pass the --out folder of a 'vidfer train' run"
            )
        return load_config(self.config_path)

    def classes(self) -> list[str]:
        """Class names in score order."""
        return list(json.loads((self.folder / "classes.json").read_text(encoding="utf-8")))

    def best_or_last(self) -> Path:
        """The best checkpoint if there is one, else the last."""
        best = self.checkpoint("best")
        if best.exists():
            return best
        last = self.checkpoint("last")
        if last.exists():
            return last
        raise CheckpointError(f"{self.folder}: no checkpoint yet; train it with 'vidfer train'")

    def load_model(self, device: torch.device | str = "cpu") -> tuple[VideoModel, TemporalPooling]:
        """The trained model (eval mode) and its temporal pooling.

        Raises:
            CheckpointError: if the run is a frame-feature, sparse auto-encoder or activity
                pipeline (no video model).
        """
        config = self.config()
        pipelines = {
            "frame-feature pipeline": config.frames,
            "sparse auto-encoder": config.sparse_ae,
            "activity (bag of words)": config.activity,
        }
        kind = next((name for name, section in pipelines.items() if section is not None), None)
        if kind is not None:
            raise CheckpointError(
                f"{self.folder}: this {kind} run has no 3D video model; use it with "
                "'vidfer evaluate' or 'vidfer predict'"
            )
        # The checkpoint holds every weight: do not read the initial weights again.
        params = {k: v for k, v in config.model.params.items() if k not in INIT_PARAMS}
        section = config.model.model_copy(update={"params": params})
        model = model_from_config(section, num_classes=len(self.classes()))
        state = load_checkpoint(self.best_or_last())
        model.load_state_dict(state["model"])
        pooling = build_pooling(
            config.pooling.name, num_classes=len(self.classes()), **config.pooling.params
        )
        if "pooling" in state:
            pooling.load_state_dict(state["pooling"])
        return model.to(device).eval(), pooling.to(device).eval()
