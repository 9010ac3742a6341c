"""Attention plots: maps over face frames and temporal profiles (thesis Figures 4.7-4.22).

- :func:`plot_attention_maps`: for a video scored by a model with an attention module, a few
  frames with the module's spatial weights (or a transformer network's sampled region)
  overlaid, next to its temporal profile.
- :func:`plot_attention_profiles`: for the video-level model, the query-key attention matrix and
  the temporal profile (mean over queries) against the per-frame labels when present.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np

from vidfer.viz.plots import save_figure


def _profile_axis(axis: Any, entry: dict[str, Any]) -> None:
    """Temporal profile over frames, with the frame labels on a second axis when present."""
    if len(entry["profile"]):
        axis.plot(entry["centres"], entry["profile"], color="tab:blue", label="attention")
    axis.set(xlabel="frame", ylabel="attention", ylim=(0, None))
    axis.grid(alpha=0.3)
    if entry.get("frame_labels") is not None:
        twin = axis.twinx()
        twin.plot(entry["frame_labels"], color="tab:red", alpha=0.6)
        twin.set_ylabel("frame label", color="tab:red")


def plot_attention_profiles(profiles: Sequence[dict[str, Any]], path: Path) -> None:
    """One column per video: attention matrix (queries x keys) above the temporal profile."""
    if not profiles:
        return
    figure, axes = plt.subplots(2, len(profiles), figsize=(4.4 * len(profiles), 7), squeeze=False)
    for column, entry in enumerate(profiles):
        top, bottom = axes[0, column], axes[1, column]
        if entry.get("matrix") is not None:
            top.imshow(np.asarray(entry["matrix"]), cmap="viridis", aspect="auto")
        top.set(title=f"{entry['video_id']} ({entry['label']})", xlabel="key", ylabel="query")
        _profile_axis(bottom, entry)
    figure.tight_layout()
    save_figure(figure, path)


def plot_attention_maps(
    maps: Sequence[dict[str, Any]], frames: Sequence[np.ndarray], path: Path, *, shown: int = 4
) -> None:
    """Per video (one row): ``shown`` frames with the spatial weights overlaid, then the profile.

    Args:
        maps: Per video ``{"video_id", "centres" (T',), "profile" (T',), "spatial" (T', h, w) or
            None, "frame_labels"}``.
        frames: Per video, its stored frames ``(T, H, W, C)`` uint8.
        path: The PNG to write.
        shown: Frames shown per video, at evenly spaced score steps.
    """
    if not maps:
        return
    figure, axes = plt.subplots(
        len(maps), shown + 1, figsize=(2.2 * shown + 4.5, 2.4 * len(maps)), squeeze=False
    )
    for row, (entry, video) in enumerate(zip(maps, frames, strict=True)):
        steps = np.linspace(0, len(entry["centres"]) - 1, shown).round().astype(int)
        for column, step in enumerate(steps):
            axis = axes[row, column]
            frame_index = int(np.clip(round(entry["centres"][step]), 0, len(video) - 1))
            frame = np.asarray(video[frame_index])
            axis.imshow(frame.squeeze(), cmap="gray" if frame.shape[-1] == 1 else None)
            if entry.get("spatial") is not None:
                weights = np.asarray(entry["spatial"][step], dtype=np.float32)  # (h, w)
                size = (frame.shape[1], frame.shape[0])
                upsampled = cv2.resize(weights, size, interpolation=cv2.INTER_LINEAR)
                axis.imshow(upsampled, cmap="jet", alpha=0.45)
            if entry.get("boxes") is not None:
                # Normalised corners -> pixels: +-1 are the image edges (align_corners=False).
                corners = (np.asarray(entry["boxes"][step]) + 1) / 2  # (4, 2) in [0, 1]
                corners = corners * [frame.shape[1], frame.shape[0]] - 0.5
                closed = np.vstack([corners, corners[:1]])
                axis.plot(closed[:, 0], closed[:, 1], color="yellow", linewidth=1.5)
            axis.set(title=f"frame {frame_index}", xticks=[], yticks=[])
        axes[row, 0].set_ylabel(entry["video_id"])
        _profile_axis(axes[row, shown], entry)
    figure.tight_layout()
    save_figure(figure, path)
