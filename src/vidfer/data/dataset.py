"""Training datasets: clips drawn from the prepared store.

Every random choice of an item (the clip positions and the augmentation) is derived from
``(seed, epoch, index)``, so an item is the same whichever process loads it and however many
loader workers there are: resume and multi-worker runs see exactly the same data. The choices are
made in the training process (:meth:`ClipDataset.draw`) and sent to the loader workers with the
item, so that workers outlive epochs without a copy of a learning sampler's state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vidfer import faults
from vidfer.data.inflight import LoaderBoard
from vidfer.data.manifest import ManifestRow
from vidfer.data.samplers import ClipSampler
from vidfer.data.store import PreparedStore
from vidfer.data.transforms import ClipTransform
from vidfer.errors import ConfigError


@dataclass(frozen=True)
class VideoItem:
    """A prepared video ready for training or evaluation.

    Attributes:
        row: Its manifest row.
        key: Its store key.
        num_frames: Stored frames.
        fps: Frame rate of the stored frames.
        frame_labels: Per-frame values of the stored frames (from the manifest's
            ``frame_labels`` file), or None.
    """

    row: ManifestRow
    key: str
    num_frames: int
    fps: float
    frame_labels: tuple[float, ...] | None = None


def choose_items(
    items: Sequence[VideoItem], video_ids: Sequence[str], what: str, default: int = 4
) -> list[VideoItem]:
    """The items named in ``video_ids`` (in that order), or the first ``default`` items.

    Raises:
        ConfigError: naming the ids that are not among ``items`` (described as ``what``).
    """
    if not video_ids:
        return list(items[:default])
    by_id = {item.row.video_id: item for item in items}
    unknown = [video_id for video_id in video_ids if video_id not in by_id]
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: not among the {what}")
    return [by_id[video_id] for video_id in video_ids]


def item_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item of one epoch (independent streams per item)."""
    return np.random.default_rng([seed, epoch, index])


class ClipItem(NamedTuple):
    """One video's draw for one epoch (batched by the default collate function).

    Attributes:
        clips: Augmented clips ``(n_clips, C, L, S, S)``.
        label: The video's class index.
        video: The video's index in the dataset.
        starts: The clips' start frames ``(n_clips,)``.
        clean: The same clips without augmentation ``(n_clips, C, L, S, S)`` when the sampler
            wants their scores this epoch, else an empty tensor.
    """

    clips: torch.Tensor
    label: int
    video: int
    starts: torch.Tensor
    clean: torch.Tensor


class Draw(NamedTuple):
    """One video's random choices for one epoch.

    Attributes:
        video: The video's index in the dataset.
        starts: Start frames ``(n_clips,)`` of its clips.
        seed: Seed of the clip augmentation.
        clean: Whether the non-augmented clips are wanted too (for a learning sampler).
    """

    video: int
    starts: np.ndarray
    seed: int
    clean: bool


class ClipDataset(Dataset[ClipItem]):
    """Clips of prepared videos for one epoch.

    Args:
        items: The videos.
        store: The prepared store holding their frames.
        sampler: Chooses the clip frames; it is bound to ``items`` here.
        transform: Turns uint8 frames ``(L, H, W, C)`` into a float clip ``(C, L, S, S)``.
        seed: The run's seed.
        clean_transform: The transform without augmentation, for the clean copies that a
            learning sampler scores (required if the sampler may want scores).
        board: Where loader workers note the item they load, so that a dead worker's video can
            be named (None: not noted).
    """

    def __init__(
        self,
        items: Sequence[VideoItem],
        store: PreparedStore,
        sampler: ClipSampler,
        transform: ClipTransform,
        seed: int,
        clean_transform: ClipTransform | None = None,
        board: LoaderBoard | None = None,
    ) -> None:
        self.items = list(items)
        self.store = store
        self.sampler = sampler
        self.transform = transform
        self.clean_transform = clean_transform
        self.seed = seed
        self.board = board
        self.epoch = 0
        sampler.bind(
            [item.num_frames for item in self.items], [item.frame_labels for item in self.items]
        )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws :meth:`draw` makes (the sampler's too)."""
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, index: int) -> Draw:
        """Video ``index``'s random choices for the current epoch.

        Made in the training process, where a learning sampler learns, so that loader workers
        need no copy of its state and can live from epoch to epoch.
        """
        item = self.items[index]
        rng = item_generator(self.seed, self.epoch, index)
        starts = self.sampler.starts(index, item.num_frames, rng)  # (n_clips,)
        return Draw(index, starts, int(rng.integers(2**62)), self.sampler.wants_scores())

    def __getitem__(self, draw: Draw) -> ClipItem:
        """The clips of a draw of :meth:`draw`."""
        if self.board is None:
            return self._load(draw)
        with self.board.loading(draw.video):
            return self._load(draw)

    def _load(self, draw: Draw) -> ClipItem:
        item = self.items[draw.video]
        faults.inject("load", item.row.video_id)
        indices = self.sampler.frames(draw.starts, item.num_frames)  # (n_clips, L)
        frames = self.store.frames(item.key)
        # torchvision's random transforms read torch's global generator: seed a private copy.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(draw.seed)
            clips = torch.stack([self.transform(frames[clip]) for clip in indices])
        clean = torch.empty(0)
        if draw.clean:
            if self.clean_transform is None:
                raise ValueError(
                    "the sampler wants clip scores; give ClipDataset a clean_transform"
                )
            clean = torch.stack([self.clean_transform(frames[clip]) for clip in indices])
        label = item.row.label_index
        return ClipItem(clips, label, draw.video, torch.as_tensor(draw.starts), clean)


class EpochDraws(Sampler[Draw]):
    """The current epoch's draws, in order: a loader's sampler whose workers outlive the epoch
    (each epoch's draws reach them; the learning sampler's state never has to)."""

    def __init__(self) -> None:
        self.draws: list[Draw] = []

    def __iter__(self) -> Iterator[Draw]:
        return iter(self.draws)

    def __len__(self) -> int:
        return len(self.draws)
