"""Training datasets: clips drawn from the prepared store.

Every random choice of an item (the clip positions and the augmentation) is derived from
``(seed, epoch, index)``, so an item is the same whichever process loads it and however many
loader workers there are: resume and multi-worker runs see exactly the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from vidfer.data.manifest import ManifestRow
from vidfer.data.samplers import ClipSampler
from vidfer.data.store import PreparedStore
from vidfer.data.transforms import ClipTransform


@dataclass(frozen=True)
class VideoItem:
    """A prepared video ready for training or evaluation.

    Attributes:
        row: Its manifest row.
        key: Its store key.
        num_frames: Stored frames.
        fps: Frame rate of the stored frames.
    """

    row: ManifestRow
    key: str
    num_frames: int
    fps: float


def item_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item of one epoch (independent streams per item)."""
    return np.random.default_rng([seed, epoch, index])


class ClipDataset(Dataset[tuple[torch.Tensor, int, int]]):
    """Clips of prepared videos for one epoch.

    Args:
        items: The videos.
        store: The prepared store holding their frames.
        sampler: Chooses the clip frames.
        transform: Turns uint8 frames ``(L, H, W, C)`` into a float clip ``(C, L, S, S)``.
        seed: The run's seed.
    """

    def __init__(
        self,
        items: Sequence[VideoItem],
        store: PreparedStore,
        sampler: ClipSampler,
        transform: ClipTransform,
        seed: int,
    ) -> None:
        self.items = list(items)
        self.store = store
        self.sampler = sampler
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` makes."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        """Clips ``(n_clips, C, L, S, S)``, the label index and the video index."""
        item = self.items[index]
        rng = item_generator(self.seed, self.epoch, index)
        indices = self.sampler.sample(index, item.num_frames, rng)  # (n_clips, L)
        frames = self.store.frames(item.key)
        # torchvision's random transforms read torch's global generator: seed a private copy.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**62)))
            clips = torch.stack([self.transform(frames[clip]) for clip in indices])
        return clips, item.row.label_index, index
