"""Still images of an :class:`~vidfer.data.images.ImageSet` served to a frame CNN:
``(input, label)`` pairs through the model's :meth:`~vidfer.models.frame_cnns.FrameCNN.prepare`,
with the training augmentation (random square crop, horizontal flip, small rotation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from vidfer.data.images import ImageSet
from vidfer.errors import ConfigError

if TYPE_CHECKING:
    from torchvision.transforms import v2


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation of still images.

    Attributes:
        crop_scale: Smallest share of the image's area a random square crop keeps (1: none).
        flip: Horizontal flip with probability 0.5.
        rotation: Largest rotation in degrees (0: none).
    """

    crop_scale: float = 0.8
    flip: bool = True
    rotation: float = 0.0

    def check(self) -> None:
        """Raise ConfigError on an out-of-range value."""
        if not 0 < self.crop_scale <= 1 or not 0 <= self.rotation <= 180:
            raise ConfigError("augmentation: 0 < crop_scale <= 1 and 0 <= rotation <= 180")

    def transform(self, size: int) -> v2.Transform:
        """The random transform of uint8 ``(3, H, W)`` images to ``(3, size, size)``."""
        from torchvision.transforms import v2  # torchvision only where images are augmented

        steps: list[v2.Transform] = [
            v2.RandomResizedCrop(size, scale=(self.crop_scale, 1.0), ratio=(1.0, 1.0))
        ]
        if self.flip:
            steps.append(v2.RandomHorizontalFlip(0.5))
        if self.rotation > 0:
            steps.append(v2.RandomRotation(self.rotation))
        return v2.Compose(steps)


def _centre_square(image: torch.Tensor) -> torch.Tensor:
    """The central square of a ``(C, H, W)`` image (torchvision's ``center_crop`` offsets)."""
    height, width = image.shape[1:]
    side = min(height, width)
    top, left = round((height - side) / 2.0), round((width - side) / 2.0)
    return image[:, top : top + side, left : left + side]


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """``(input (C, S, S), label)`` pairs of some images of an :class:`ImageSet`.

    Training images get the random ``augmentation``; test images (``augmentation`` None) are
    centre-cropped to a square. Both go through ``prepare`` (a model's
    :meth:`~vidfer.models.frame_cnns.FrameCNN.prepare`: resize, gray, normalisation). Random
    draws use torch's global generator (seeded by the trainer).

    Args:
        images: The image source.
        indices: Which of its images, in order.
        prepare: uint8 ``(T, H, W, 3)`` -> normalised ``(T, C, S, S)``.
        size: The model's input side S.
        augmentation: Training augmentation, or None for test images.
    """

    def __init__(
        self,
        images: ImageSet,
        indices: Sequence[int] | np.ndarray,
        prepare: Callable[[torch.Tensor], torch.Tensor],
        size: int,
        augmentation: Augmentation | None = None,
    ) -> None:
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)
        self.prepare = prepare
        self.transform = augmentation.transform(size) if augmentation is not None else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        index = int(self.indices[position])
        image = torch.from_numpy(np.array(self.images.image(index)))  # a writable copy
        image = image.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        # (3, H, W) -> (3, S, S) augmented, or its central square (3, side, side)
        image = self.transform(image) if self.transform is not None else _centre_square(image)
        x = self.prepare(image.permute(1, 2, 0)[None])[0]  # (1, H, W, 3) -> (C, S, S)
        return x, int(self.images.labels[index])
