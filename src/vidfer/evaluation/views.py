"""Multi-view testing: evenly spaced clips x crops x flips, fused (FstCN §2.4).

Each of ``clips`` evenly spaced clips (drawn by the run's own sampler, e.g. FstCN's clip pairs)
is seen in ``crops`` crops of the training size (the centre, or a 3x3 grid) and their horizontal
flips. Each view's class probabilities come from the model's score map averaged over time; the
views of a clip are fused by SCI weighting (eq. 6) or averaging, the clips by the per-class max
(eq. 7) or averaging.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from vidfer.config import RunConfig
from vidfer.data.samplers import ClipSampler
from vidfer.data.transforms import frames_to_video, video_to_clip
from vidfer.evaluation.decision import FUSIONS
from vidfer.models.base import VideoModel


def crop_views(video: torch.Tensor, size: int, crops: int, flip: bool) -> torch.Tensor:
    """Views ``(V, T, C, size, size)`` of frames ``(T, C, H, W)`` (H, W >= size).

    Args:
        video: The frames, normalised.
        size: Crop side.
        crops: 1 (centre) or 9 (3x3 grid: top-left ... bottom-right).
        flip: Add the horizontal flip of every crop.
    """
    height, width = video.shape[-2:]
    rows = [(height - size) // 2] if crops == 1 else [0, (height - size) // 2, height - size]
    cols = [(width - size) // 2] if crops == 1 else [0, (width - size) // 2, width - size]
    views = [video[..., y : y + size, x : x + size] for y in rows for x in cols]
    if flip:
        views += [view.flip(-1) for view in views]
    return torch.stack(views)


def views_video(frames: np.ndarray, config: RunConfig) -> torch.Tensor:
    """Stored frames ``(T, H, W, C)`` as normalised floats ``(T, C, H', W')`` to crop views from.

    The short side becomes ``eval.views.resize`` when set; otherwise the frames keep their stored
    size, unless it is smaller than the crop (``transforms.size``), which it is then resized to.
    """
    size, resize = config.transforms.size, config.eval.views.resize
    if resize is None and min(frames.shape[1:3]) < size:
        resize = size
    steps: list[v2.Transform] = []
    if resize is not None:
        steps.append(v2.Resize(max(resize, size), antialias=True))
    steps += [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(config.transforms.mean, config.transforms.std),
    ]
    return v2.Compose(steps)(frames_to_video(frames)).as_subclass(torch.Tensor)


@torch.no_grad()
def views_logits(
    model: VideoModel,
    frames: np.ndarray,
    sampler: ClipSampler,
    config: RunConfig,
    device: torch.device,
) -> torch.Tensor:
    """Video scores ``(K,)`` (log of the fused probabilities) of stored frames ``(T, H, W, C)``."""
    views = config.eval.views
    video = views_video(frames, config)  # (T, C, H, W)
    starts = sampler.test_starts(len(frames), views.clips)
    indices = sampler.frames(starts, len(frames))  # (M, L)
    per_clip = []
    for clip_frames in indices:
        clip = video[torch.as_tensor(clip_frames)]  # (L, C, H, W)
        crops = crop_views(clip, config.transforms.size, views.crops, views.flip)
        batch = video_to_clip(crops).to(device)  # (V, L, C, s, s) -> (V, C, L, s, s)
        probabilities = F.softmax(model(batch).float().mean(dim=2), dim=1)  # (V, K)
        per_clip.append(FUSIONS[views.view_fusion](probabilities, dim=0))  # (K,)
    fused = FUSIONS[views.clip_fusion](torch.stack(per_clip), dim=0)  # (M, K) -> (K,)
    return fused.clamp(min=1e-12).log().cpu()
