"""A trained frame pipeline applied to one video: per-frame timeline and video-level features."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vidfer.config import FramesConfig
from vidfer.models.frame_heads import SVMS, FrameAverage, Standardised
from vidfer.models.recurrent import SequenceClassifier
from vidfer.pipelines.frame_features import VideoFeatures
from vidfer.training.sequences import (
    evenly_spaced,
)

TIMELINE_WINDOW = 16
"""Frames around each frame whose aggregate an SVM pipeline scores for the timeline."""


@torch.no_grad()
def timeline(
    frames: FramesConfig, head: nn.Module, video: VideoFeatures, device: torch.device
) -> tuple[np.ndarray | None, np.ndarray]:
    """Per-step class probabilities ``(T, K)`` and the video's ``(K,)`` for a new video.

    The video's are scored exactly as in evaluation. Per step: the averaged CNN's per-frame
    probabilities (``average``); the recurrent model's classifier on each step's output; for
    the SVMs, their score of the aggregate of a window of ``max(TIMELINE_WINDOW, bins)``
    frames centred on the step. None per step when the extractors' step counts differ.
    """
    head.eval()
    if frames.classifier.name in SVMS:
        video_probs = head(torch.from_numpy(video.vector(frames)).float()[None].to(device))
        lengths = {len(part) for part in video.parts}
        if len(lengths) > 1:
            return None, video_probs.softmax(dim=1)[0].cpu().numpy()
        length, half = lengths.pop(), max(TIMELINE_WINDOW, frames.bins) // 2
        windows = [
            VideoFeatures(
                video.video_id, video.label, [p[max(t - half, 0) : t + half] for p in video.parts]
            )
            for t in range(length)
        ]
        rows = torch.from_numpy(np.stack([w.vector(frames) for w in windows])).float()
        per_step = head(rows.to(device)).softmax(dim=1)  # (T, D) -> (T, K)
        return per_step.cpu().numpy(), video_probs.softmax(dim=1)[0].cpu().numpy()
    chosen = evenly_spaced(frames.sequence_length)(len(video.steps))  # as in evaluation
    steps = torch.from_numpy(video.steps).float()[None].to(device)  # (T, D) -> (1, T, D)
    mask = torch.ones(steps.shape[:2], dtype=torch.bool, device=device)
    video_probs = head(steps[:, chosen], mask[:, chosen]).softmax(dim=1)[0]
    if isinstance(head, FrameAverage):
        per_step = head.per_frame(steps)[0]  # (T, K)
    else:
        assert isinstance(head, Standardised) and isinstance(head.classifier, SequenceClassifier)
        per_step = head.classifier.step_logits(head.standardise(steps), mask)[0].softmax(dim=1)
    return per_step.cpu().numpy(), video_probs.cpu().numpy()


@torch.no_grad()
def video_embedding(
    frames: FramesConfig, head: nn.Module, video: VideoFeatures, device: torch.device
) -> np.ndarray:
    """A video-level feature vector for feature-level fusion.

    The standardised aggregate the SVMs classify (Kahou: the k-bin pooled CNN outputs), the
    recurrent model's read-out (Kahou: the RNN's last hidden state), or, for ``average``, the
    mean per-frame probabilities.
    """
    head.eval()
    if frames.classifier.name in SVMS:
        assert isinstance(head, Standardised)
        vector = torch.from_numpy(video.vector(frames)).float().to(device)
        return head.standardise(vector).cpu().numpy()
    steps = torch.from_numpy(video.steps).float()[None].to(device)  # (T, D) -> (1, T, D)
    chosen = evenly_spaced(frames.sequence_length)(steps.shape[1])
    steps = steps[:, chosen]
    mask = torch.ones(steps.shape[:2], dtype=torch.bool, device=device)
    if isinstance(head, FrameAverage):
        return head(steps, mask).exp()[0].cpu().numpy()
    assert isinstance(head, Standardised) and isinstance(head.classifier, SequenceClassifier)
    return head.classifier.hidden_state(head.standardise(steps), mask)[0].cpu().numpy()
