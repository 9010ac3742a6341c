"""Attention maps of a model with an attention module, on whole held-out videos.

``vidfer attention-maps RUN`` (and the end of training for such runs) scores chosen videos in one
pass with the module recording, and writes ``attention_maps.json`` (per video: score-step centres,
temporal profile, spatial weights per step) and ``attention_maps.png`` (frames with the spatial
weights overlaid, and the temporal profile) into the run folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vidfer.config import RunConfig
from vidfer.data.dataset import VideoItem, choose_items
from vidfer.data.prepared import load_dataset
from vidfer.data.store import PreparedStore
from vidfer.data.transforms import build_clip_transform
from vidfer.device import resolve_device
from vidfer.errors import ConfigError
from vidfer.evaluation.scoring import score_video
from vidfer.io.atomic import atomic_write_json
from vidfer.io.run_folder import RunDir
from vidfer.models.attention import AttentiveModel
from vidfer.models.base import VideoModel
from vidfer.models.trained import load_run_model
from vidfer.viz.attention import plot_attention_maps

log = logging.getLogger(__name__)


def sampled_boxes(theta: torch.Tensor, steps: int) -> list[list[list[float]]]:
    """Per score step, the 4 corners ``(x, y)`` in [-1, 1] of the region a transformer network
    samples: the output's corners mapped by the spatial part of ``theta``.

    Args:
        theta: One video's parameters, ``(T', 2, 3)`` (per frame) or ``(3, 4)`` (whole clip).
        steps: Score steps ``T'``.
    """
    if theta.ndim == 2:  # (3, 4) on (x, y, t): keep x, y rows and their x, y and shift columns
        theta = theta[:2][:, [0, 1, 3]].expand(steps, 2, 3)
    corners = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]])
    boxes = theta.float().cpu() @ corners.T  # (T', 2, 3) @ (3, 4) -> (T', 2, 4)
    return boxes.transpose(1, 2).tolist()  # (T', 4, 2)


@torch.no_grad()
def attention_maps(
    model: AttentiveModel,
    items: Sequence[VideoItem],
    store: PreparedStore,
    config: RunConfig,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Record the module's maps over each whole video (one pass per video)."""
    model.eval()
    transform = build_clip_transform(config.transforms, train=False)
    out = []
    model.attention.record = True
    try:
        for item in items:
            clip = transform(store.frames(item.key)).to(device)  # (C, T, S, S)
            # The module records one forward pass: the video is never cut into chunks here.
            one_pass = config.eval.model_copy(update={"chunk_frames": None})
            score_map = score_video(model, clip, one_pass)
            maps = model.attention.maps
            temporal = maps.get("temporal")
            spatial = maps.get("spatial")
            theta = maps.get("theta")
            steps = len(score_map.centres)
            out.append(
                {
                    "video_id": item.row.video_id,
                    "centres": score_map.centres.tolist(),
                    "profile": temporal[0].float().cpu().tolist() if temporal is not None else [],
                    "spatial": spatial[0].float().cpu().tolist() if spatial is not None else None,
                    "boxes": sampled_boxes(theta[0], steps) if theta is not None else None,
                    "frame_labels": list(item.frame_labels) if item.frame_labels else None,
                }
            )
    finally:
        model.attention.record = False
    return out


def write_attention_maps(
    folder: Path,
    model: VideoModel,
    items: Sequence[VideoItem],
    store: PreparedStore,
    config: RunConfig,
    device: torch.device,
) -> bool:
    """Write ``attention_maps.json`` and ``.png`` for ``items``; False if nothing to draw.

    Only models with an attention module that score a video in one pass have maps: the modules
    record one pass, not a series of windows.
    """
    if not isinstance(model, AttentiveModel) or not items:
        return False
    if not (config.eval.mode == "dense" and model.geometry.dense):
        log.info("no attention maps: the model scores videos by windows, not in one pass")
        return False
    maps = attention_maps(model, items, store, config, device)
    atomic_write_json(folder / "attention_maps.json", maps)
    frames = [store.frames(item.key) for item in items]
    plot_attention_maps(maps, frames, folder / "attention_maps.png")
    return True


def attention_maps_of_run(
    run_folder: str | Path, split: str = "test", video_ids: Sequence[str] = ()
) -> Path:
    """``vidfer attention-maps``: maps of a trained run's attention module.

    Returns:
        The PNG written.

    Raises:
        ConfigError: if the run has no attention module, the split no video, or a video id is
            unknown.
    """
    run = RunDir(run_folder)
    config = run.config()
    if config.model.attention is None:
        raise ConfigError(f"{run.folder}: the model has no attention module (model.attention)")
    device = resolve_device(config.train.device)
    model, _ = load_run_model(run, device)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    items = choose_items(data.split(split), video_ids, f"{split} videos")
    if not items:
        raise ConfigError(f"{config.data.manifest}: no usable video in split {split!r}")
    if not write_attention_maps(run.folder, model, items, data.store, config, device):
        raise ConfigError(
            f"{run.folder}: attention maps need one-pass scoring (eval.mode dense and a "
            "temporally dense model)"
        )
    return run.folder / "attention_maps.png"
