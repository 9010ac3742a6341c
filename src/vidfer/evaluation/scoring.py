"""Whole-video scoring: a temporal score map for every video, in one pass when possible.

A temporally dense, fully convolutional model scores a whole video in one forward pass; without
temporal padding that pass equals scoring every window of its receptive field separately, at a
fraction of the cost. Models that only score fixed clips are slid over the video in windows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vidfer.config import EvalConfig
from vidfer.data.samplers import EveryWindow, clip_indices, short_start
from vidfer.models.base import TemporalGeometry, VideoModel


@dataclass(frozen=True)
class ScoreMap:
    """Class scores over time for one video.

    Attributes:
        scores: Logits ``(K, T')``.
        centres: Frame position ``(T',)`` (in the scored frames) at the centre of each step.
    """

    scores: torch.Tensor
    centres: np.ndarray

    def per_frame(self, num_frames: int) -> torch.Tensor:
        """Scores ``(K, num_frames)``: each frame takes the step whose centre is nearest."""
        frames = np.arange(num_frames)
        nearest = np.abs(frames[:, None] - self.centres[None, :]).argmin(axis=1)  # (num_frames,)
        return self.scores[:, torch.as_tensor(nearest)]


Forward = Callable[[torch.Tensor], torch.Tensor]


def _dense(forward: Forward, geometry: TemporalGeometry, clip: torch.Tensor) -> ScoreMap:
    num_frames = clip.shape[1]
    needed = max(geometry.receptive_field - 2 * geometry.padding, 1)
    offset = 0
    if num_frames < needed:
        # Too short for one output step: repeat edge frames, the video centred.
        offset = short_start(num_frames, needed)
        clip = clip[:, torch.as_tensor(clip_indices(offset, needed, num_frames))]
    scores = forward(clip.unsqueeze(0))[0]  # (1, C, T, H, W) -> (X, T')
    centres = np.array([geometry.centre_frame(step) for step in range(scores.shape[1])]) + offset
    return ScoreMap(scores=scores, centres=np.clip(centres, 0, num_frames - 1))


def _windows(forward: Forward, clip: torch.Tensor, config: EvalConfig) -> ScoreMap:
    num_frames = clip.shape[1]
    windows = EveryWindow(config.clip_len, window_step=config.stride)
    indices = windows.sample(0, num_frames, np.random.default_rng(0))  # (n, L)
    pooled = []
    for chunk in np.array_split(indices, max(1, -(-len(indices) // config.batch_size))):
        batch = clip[:, torch.as_tensor(chunk)]  # (C, b, L, H, W)
        batch = batch.permute(1, 0, 2, 3, 4)  # (b, C, L, H, W)
        pooled.append(forward(batch).mean(dim=2))  # (b, X, T'_w) -> (b, X)
    scores = torch.cat(pooled).T  # (n, X) -> (X, n)
    centres = indices.mean(axis=1)
    return ScoreMap(scores=scores, centres=centres)


def _over_video(
    forward: Forward, model: VideoModel, clip: torch.Tensor, config: EvalConfig
) -> ScoreMap:
    if config.mode == "dense" and model.geometry.dense:
        return _dense(forward, model.geometry, clip)
    return _windows(forward, clip, config)


@torch.no_grad()
def score_video(model: VideoModel, clip: torch.Tensor, config: EvalConfig) -> ScoreMap:
    """Score a whole video.

    Args:
        model: A video model in eval mode.
        clip: The whole video, transformed, ``(C, T, H, W)`` on the model's device.
        config: ``mode="dense"`` uses one pass when the model is temporally dense;
            ``"windows"`` slides ``clip_len``-frame windows with step ``stride``.
    """
    return _over_video(model, model, clip, config)


@torch.no_grad()
def feature_sequence(model: VideoModel, clip: torch.Tensor, config: EvalConfig) -> ScoreMap:
    """Backbone features of a whole video, averaged over space: a map ``(F, T')``.

    The same passes as :func:`score_video` (one pass or windows) on
    :meth:`VideoModel.forward_features`; ``scores`` then holds the features.
    """

    def features(x: torch.Tensor) -> torch.Tensor:
        return model.forward_features(x).mean(dim=(3, 4))  # (B, F, T', H', W') -> (B, F, T')

    return _over_video(features, model, clip, config)


def video_logits(score_map: ScoreMap, pooling: nn.Module) -> torch.Tensor:
    """Video-level logits ``(K,)`` by temporal pooling of a score map."""
    return pooling(score_map.scores.unsqueeze(0))[0]  # (1, K, T') -> (K,)
