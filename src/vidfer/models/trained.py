"""A clip model trained by ``vidfer train``, loaded back from its run folder."""

from __future__ import annotations

import torch

from vidfer.config import KIND_NAMES
from vidfer.errors import CheckpointError
from vidfer.io.checkpoint import load_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models import build_pooling, model_from_config
from vidfer.models.base import VideoModel
from vidfer.models.pooling import TemporalPooling

INIT_PARAMS = ("pretrained", "scl_init")
"""Model parameters that only say where the initial weights come from."""


def load_run_model(
    run: RunDir, device: torch.device | str = "cpu"
) -> tuple[VideoModel, TemporalPooling]:
    """The trained model of a clip run (eval mode, best checkpoint else last) and its pooling.

    Raises:
        CheckpointError: if the run is not a clip run (a frame-feature, sparse auto-encoder or
            activity pipeline has no 3D video model), or has no checkpoint.
    """
    config = run.config()
    if config.kind != "clip":
        raise CheckpointError(
            f"{run.folder}: this {KIND_NAMES[config.kind]} run has no 3D video model; use it "
            "with 'vidfer evaluate' or 'vidfer predict'"
        )
    num_classes = len(run.classes())
    # The checkpoint holds every weight: do not read the initial weights again.
    params = {k: v for k, v in config.model.params.items() if k not in INIT_PARAMS}
    section = config.model.model_copy(update={"params": params, "weights": None})
    model = model_from_config(section, num_classes=num_classes)
    state = load_checkpoint(run.best_or_last())
    model.load_state_dict(state["model"])
    pooling = build_pooling(config.pooling.name, num_classes=num_classes, **config.pooling.params)
    if "pooling" in state:
        pooling.load_state_dict(state["pooling"])
    return model.to(device).eval(), pooling.to(device).eval()
