"""Sampling maps of the learning clip samplers (the thesis's Figures 3.2-3.8).

For chosen training videos: the start position drawn at every epoch, coloured by training phase
(uniform warm-up, deterministic exploration, weighted exploitation), above the final sampling
distribution over start positions, with the per-frame labels when the dataset has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from vidfer.data.dataset import VideoItem, choose_items
from vidfer.data.stochastic_softmax import PHASES, PositionSampler
from vidfer.io.atomic import atomic_write_json
from vidfer.viz.plots import save_figure

_PHASE_COLOURS = {"warmup": "tab:grey", "explore": "tab:orange", "exploit": "tab:blue"}


def sampling_maps(
    sampler: PositionSampler, items: Sequence[VideoItem], video_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Per chosen video: its draws per epoch with their phase, its values and distribution.

    Args:
        sampler: A bound learning sampler after training.
        items: The training videos, in the sampler's order.
        video_ids: The videos to describe; empty: the first four.

    Raises:
        ConfigError: if a video id is not a training video.
    """
    chosen = choose_items(items, video_ids, "training videos (train.plot_videos)")
    index = {item.row.video_id: number for number, item in enumerate(items)}
    maps = []
    for item in chosen:
        video_id = item.row.video_id
        video = index[video_id]
        history = sampler.history[video]
        labels = items[video].frame_labels
        maps.append(
            {
                "video_id": video_id,
                "positions": history,
                "phases": [sampler.phase(epoch) for epoch in range(len(history))],
                "values": sampler.values[video].tolist(),
                "distribution": sampler.distribution(video).tolist(),
                "frame_labels": list(labels) if labels is not None else None,
            }
        )
    return maps


def write_sampling_maps(
    folder: Path, sampler: PositionSampler, items: Sequence[VideoItem], video_ids: Sequence[str]
) -> None:
    """Write ``sampling_maps.json`` and ``sampling_maps.png`` into the run folder."""
    maps = sampling_maps(sampler, items, video_ids)
    atomic_write_json(folder / "sampling_maps.json", maps)
    plot_sampling_maps(maps, sampler.span, folder / "sampling_maps.png")


def plot_sampling_maps(maps: Sequence[dict[str, Any]], span: int, path: Path) -> None:
    """One column per video: draws per epoch (top), final distribution (bottom).

    Positions are plotted at the clip's centre frame (start + span // 2) so that they line up
    with the per-frame labels.
    """
    figure, axes = plt.subplots(
        2, len(maps), figsize=(4.4 * len(maps), 5.5), squeeze=False, sharex="col"
    )
    for column, entry in enumerate(maps):
        top, bottom = axes[0, column], axes[1, column]
        centre = span // 2
        positions = np.asarray(entry["positions"]) + centre
        epochs = np.arange(1, len(positions) + 1)
        phases = np.asarray(entry["phases"])
        for phase in PHASES:
            chosen = phases == phase
            if chosen.any():
                top.scatter(
                    positions[chosen],
                    epochs[chosen],
                    s=14,
                    label=phase,
                    color=_PHASE_COLOURS[phase],
                )
        top.set(title=entry["video_id"], ylabel="epoch")
        top.invert_yaxis()
        top.grid(alpha=0.3)
        distribution = np.asarray(entry["distribution"])
        frames = np.arange(len(distribution)) + centre
        bottom.plot(frames, distribution, color="tab:blue", label="sampling probability")
        bottom.set(xlabel="frame (clip centre)", ylabel="probability", ylim=(0, None))
        if entry["frame_labels"] is not None:
            twin = bottom.twinx()
            twin.plot(entry["frame_labels"], color="tab:red", alpha=0.6, label="frame label")
            twin.set_ylabel("frame label", color="tab:red")
        bottom.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    save_figure(figure, path)
