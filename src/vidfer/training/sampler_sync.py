"""Learning samplers kept identical on every process of a distributed run.

A learning sampler (stochastic softmax, REINFORCE) learns from the clean-clip scores of the videos
it drew. Under DDP each process trains its share of the videos, so each sees only its share of
the scores: :class:`SamplerFeed` holds them until the epoch ends, gathers them from every rank and
replays them on every rank's sampler in the order of the epoch (the draws of an epoch depend only
on earlier epochs, so replaying at the end changes nothing), dropping the repeats that padded the
epoch. A digest of the sampler states is then compared across ranks, and a difference stops the
run; ``distributed.json`` in the run folder records the final digests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from vidfer.data.samplers import ClipSampler
from vidfer.errors import VidferError
from vidfer.io.atomic import atomic_write_json
from vidfer.training.distributed import Distributed

Observation = tuple[int, int, np.ndarray, np.ndarray | None, int]  # position, video, starts, ...


class SamplerFeed:
    """Gives a learning sampler what every rank observed, in the epoch's order.

    With one process, :meth:`observe` passes straight to the sampler. With several, observations
    are held; :meth:`end_epoch` gathers them from every rank and replays them on every rank's
    sampler in the order of the (padded) epoch order, dropping the padding's repeats.

    Args:
        sampler: The run's sampler.
        place: This process's place.
    """

    def __init__(self, sampler: ClipSampler, place: Distributed) -> None:
        self.sampler = sampler
        self.place = place
        self._held: list[Observation] = []

    def observe(
        self, video: int, starts: np.ndarray, logits: np.ndarray | None, label: int
    ) -> None:
        """As :meth:`ClipSampler.observe`, for this rank's next video of the epoch."""
        if not self.place.active:
            self.sampler.observe(video, starts, logits, label)
            return
        # The k-th video of rank r sits at r + k * world_size of the padded epoch order.
        position = self.place.rank + len(self._held) * self.place.world_size
        self._held.append((position, video, starts, logits, label))

    def held_state(self) -> list[dict[str, Any]]:
        """This rank's observations held since the epoch began, as checkpoint values (tensors)."""
        return [
            {
                "position": position,
                "video": video,
                "starts": torch.from_numpy(np.asarray(starts)),
                "logits": None if logits is None else torch.from_numpy(np.asarray(logits)),
                "label": label,
            }
            for position, video, starts, logits, label in self._held
        ]

    def load_held(self, state: list[dict[str, Any]]) -> None:
        """Inverse of :meth:`held_state` (a mid-epoch resume on as many processes)."""
        self._held = [
            (
                int(item["position"]),
                int(item["video"]),
                item["starts"].numpy(),
                None if item["logits"] is None else item["logits"].numpy(),
                int(item["label"]),
            )
            for item in state
        ]

    def end_epoch(self, videos: int) -> None:
        """Replay every rank's observations of the epoch (of ``videos`` real ones), then check
        that every rank's sampler is in the same state.

        Raises:
            VidferError: if the sampler states differ across ranks.
        """
        if not self.place.active:
            return
        gathered = sorted(
            (item for held in self.place.gather(self._held) for item in held),
            key=lambda item: item[0],
        )
        self._held = []
        for position, video, starts, logits, label in gathered:
            if position < videos:  # beyond: the padding's repeats of the first videos
                self.sampler.observe(video, starts, logits, label)
        digests = self.place.gather(state_digest(self.sampler.state_dict()))
        if len(set(digests)) != 1:
            raise VidferError(
                f"the clip samplers' states differ across the {self.place.world_size} processes "
                "after the epoch (a bug: please report it)"
            )


def write_distributed(folder: Path, place: Distributed, sampler: ClipSampler) -> None:
    """Write ``distributed.json`` into the run folder (rank 0; every rank calls it): the process
    count, the backend and every rank's final sampler state digest (they are equal)."""
    if not place.active:
        return
    digests = place.gather(state_digest(sampler.state_dict()))
    if place.is_main:
        atomic_write_json(
            folder / "distributed.json",
            {
                "world_size": place.world_size,
                "backend": dist.get_backend(),
                "sampler_state_sha256": digests,
            },
        )


def state_digest(state: Any) -> str:
    """SHA-256 of a sampler's state (nested dicts and lists of tensors, arrays and plain values),
    to compare the states of ranks."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                digest.update(repr(key).encode())
                feed(value[key])
        elif isinstance(value, list | tuple):
            digest.update(f"[{len(value)}".encode())
            for item in value:
                feed(item)
        elif isinstance(value, torch.Tensor | np.ndarray):
            array = value.numpy() if isinstance(value, torch.Tensor) else value
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        else:
            digest.update(repr(value).encode())

    feed(state)
    return digest.hexdigest()
