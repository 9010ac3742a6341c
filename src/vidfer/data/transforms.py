"""Clip transforms: the same random parameters for every frame of a clip (torchvision v2).

Input: uint8 frames ``(T, H, W, C)`` (numpy or tensor). Output: float ``(C, T, H, W)``
normalised, the layout of 3D models.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from vidfer.config import TransformConfig

ClipTransform = Callable[[np.ndarray | torch.Tensor], torch.Tensor]


def frames_to_video(frames: np.ndarray | torch.Tensor) -> tv_tensors.Video:
    """uint8 frames ``(T, H, W, C)`` to a ``tv_tensors.Video`` ``(T, C, H, W)``."""
    # A memory-mapped store array is read-only: copy only when torch could not own it.
    tensor = torch.as_tensor(np.require(frames, requirements=["C", "W"]))  # (T, H, W, C)
    return tv_tensors.Video(tensor.permute(0, 3, 1, 2))  # (T, C, H, W)


def video_to_clip(video: torch.Tensor) -> torch.Tensor:
    """Frame-sequence layout ``(..., T, C, H, W)`` to clip layout ``(..., C, T, H, W)``."""
    return video.transpose(-4, -3)


def clip_to_video(clip: torch.Tensor) -> torch.Tensor:
    """Clip layout ``(..., C, T, H, W)`` to frame-sequence layout ``(..., T, C, H, W)``."""
    return clip.transpose(-4, -3)


def build_clip_transform(config: TransformConfig, *, train: bool) -> ClipTransform:
    """The training (augmenting) or evaluation (resize + center crop) transform.

    Training: random resized crop (``crop_scale``), horizontal flip, rotation, colour jitter, all
    drawn once per clip. Evaluation: resize the short side to ``size`` and center-crop. Both end
    with float conversion and normalisation by ``mean``/``std``.
    """
    if train:
        steps: list[v2.Transform] = [
            v2.RandomResizedCrop(config.size, scale=config.crop_scale, antialias=True)
        ]
        if config.flip > 0:
            steps.append(v2.RandomHorizontalFlip(config.flip))
        if config.rotation > 0:
            steps.append(v2.RandomRotation(config.rotation))
        if any(config.color_jitter):
            brightness, contrast, saturation, hue = config.color_jitter
            steps.append(v2.ColorJitter(brightness, contrast, saturation, hue))
    else:
        steps = [v2.Resize(config.size, antialias=True), v2.CenterCrop(config.size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(config.mean, config.std)]
    pipeline = v2.Compose(steps)

    def transform(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        return video_to_clip(pipeline(frames_to_video(frames)).as_subclass(torch.Tensor))

    return transform
