"""Training on several processes and machines: PyTorch's DistributedDataParallel under torchrun.

``vidfer train CONFIG --out RUN --nproc N`` starts ``torchrun`` with N processes on this machine;
on several machines every machine runs ``torchrun ... -m vidfer train`` itself
(docs/guide/distributed.md). Each process reads torchrun's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``), joins the process group (gloo on CPUs, NCCL
on GPUs, one GPU per process) and trains a replica of the model whose gradients DDP averages
over the processes after every backward pass.

What keeps the processes one run:

- **Data.** Every process computes the epoch's order from the shared seed, pads it by repeating
  its first videos to a multiple of the process count and takes every N-th video from its rank
  (as ``DistributedSampler``), so that each process has the same number of batches. The global
  batch is ``train.batch_size``: each process loads ``batch_size / N`` clips per step, and the
  global batches hold the videos of a single process's batches (the last one excepted, which the
  padding fills).
- **Learning samplers.** The clean-clip scores a rank observes are held until the epoch ends, then
  gathered from every rank and given to every rank's sampler in the epoch's order
  (:mod:`vidfer.training.sampler_sync`), so that every sampler ends the epoch in the same state.
- **Outputs.** Rank 0 alone writes the run folder (config, metrics, checkpoints, plots); every
  rank evaluates its share of the held-out videos and the shares are gathered.
- **Randomness.** Process ``r`` seeds its global generators (dropout) with ``seed + r``; a
  checkpoint holds every rank's generator states, so that resuming on as many processes is exact.
  A mid-epoch checkpoint (``train.checkpoint_every_steps``; every rank reaches the step together)
  also holds every rank's held sampler observations, running sums and BatchNorm statistics.
- **Kinds.** Only 3D clip runs are distributed: :func:`check_processes` refuses the other kinds,
  and :func:`refuse_under_torchrun` the single-process commands, in every rank before any writes.

BatchNorm statistics are per process on CPUs (SyncBatchNorm needs GPUs; on GPUs it is used).
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vidfer.config import KIND_NAMES, DataConfig, RunConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.manifest import read_manifest
from vidfer.data.prepare import prepare_rows
from vidfer.data.store import PreparedStore
from vidfer.device import resolve_device
from vidfer.errors import ConfigError
from vidfer.evaluation.evaluate import ClipEvaluator, EvalOutcome

log = logging.getLogger(__name__)

T = TypeVar("T")

# Collectives wait this long for the slowest rank (e.g. preparing a large share of the videos);
# a rank that dies is noticed by torchrun, which stops the others, long before.
TIMEOUT = datetime.timedelta(hours=24)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run.

    Attributes:
        rank: Rank of this process (0 for a single process).
        world_size: Number of processes.
        local_rank: Rank among the processes of this machine (its GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True when there are several processes."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that writes the run folder."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (a no-op for one process)."""
        if self.active:
            dist.barrier()

    def gather(self, value: T) -> list[T]:
        """``value`` of every rank, in rank order (any picklable value)."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def share(self, items: Sequence[T], *, pad: bool = False) -> list[T]:
        """This rank's share of ``items``: every ``world_size``-th item from its rank.

        With ``pad``, ``items`` are first extended by repeating them from the start to a multiple
        of ``world_size``, so that every rank gets as many (``DistributedSampler``'s rule).
        """
        padded = list(items)
        if pad and padded:
            while len(padded) % self.world_size:
                padded.append(padded[len(padded) - len(items)])
        return padded[self.rank :: self.world_size]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Every value averaged over the ranks (the same keys on every rank)."""
        if not self.active:
            return values
        tensor = torch.tensor([float(values[key]) for key in sorted(values)], dtype=torch.float64)
        dist.all_reduce(tensor)
        return {
            key: float(v) / self.world_size
            for key, v in zip(sorted(values), tensor.tolist(), strict=True)
        }

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` is True on every rank (a decision they all take together)."""
        if not self.active:
            return flag
        tensor = torch.tensor([int(flag)])
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return bool(tensor.item())


def from_environment() -> Distributed:
    """The process's place from torchrun's environment; one process without it.

    Raises:
        ConfigError: if the variables are inconsistent.
    """
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as error:
        raise ConfigError(
            f"torchrun's RANK/WORLD_SIZE/LOCAL_RANK are not integers: {error}"
        ) from None
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world_size}; launch with torchrun")
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank)


def join(place: Distributed, device: torch.device) -> None:
    """Join the process group of torchrun's processes (gloo for the CPU, NCCL for GPUs), once.

    Ranks other than 0 log warnings only and show no progress bars.
    """
    if not place.active or dist.is_initialized():
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    if not place.is_main:
        logging.getLogger().setLevel(logging.WARNING)
        os.environ["VIDFER_PROGRESS"] = "0"


def check_processes(config: RunConfig, world_size: int) -> None:
    """Check that ``world_size`` processes can train ``config``.

    Raises:
        ConfigError: on a setting that several processes cannot honour (the message says which).
    """
    if world_size == 1:
        return
    if config.kind != "clip":
        raise ConfigError(
            f"kind {config.kind!r}: a {KIND_NAMES[config.kind]} run trains in one process (its "
            "features and heads are not sharded); run 'vidfer train CONFIG --out RUN' without "
            "--nproc or torchrun"
        )
    if config.train.batch_size % world_size:
        raise ConfigError(
            f"train.batch_size={config.train.batch_size} is the global batch and must be a "
            f"multiple of the {world_size} processes; change it or --nproc"
        )


def refuse_under_torchrun(command: str) -> None:
    """Refuse, in every process and before any writes, a command that runs in one process.

    Raises:
        ConfigError: when launched by torchrun with more than one process.
    """
    if from_environment().active:
        raise ConfigError(
            f"{command} runs in one process (it is not sharded); run 'vidfer {command} ...' "
            "without torchrun"
        )


def launch(arguments: Sequence[str], nproc: int) -> int:
    """Run ``vidfer ARGUMENTS`` in ``nproc`` processes on this machine with torchrun.

    Returns:
        torchrun's exit status (0 when every process succeeded).
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a rendezvous on this machine, on a free port
        f"--nproc-per-node={nproc}",
        "-m",
        "vidfer",
        *arguments,
    ]
    log.info("%s", " ".join(command))
    return subprocess.run(command, check=False).returncode


def start(config: RunConfig) -> tuple[Distributed, torch.device]:
    """Join the run's process group when launched by torchrun, and choose this process's device
    (GPU ``LOCAL_RANK`` when training on GPUs).

    Raises:
        ConfigError: on a setting that several processes cannot honour (the message says which).
    """
    place = from_environment()
    device = resolve_device(config.train.device)
    if not place.active:
        return place, device
    check_processes(config, place.world_size)
    if device.type == "cuda":
        device = torch.device("cuda", place.local_rank)
        torch.cuda.set_device(device)
    join(place, device)
    log.info(
        "%d processes (%s), global batch %d = %d per process",
        place.world_size,
        dist.get_backend(),
        config.train.batch_size,
        config.train.batch_size // place.world_size,
    )
    return place, device


def stop() -> None:
    """Leave the process group (when there is one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def parallel(module: nn.Module, place: Distributed, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel for several processes (SyncBatchNorm on GPUs);
    ``module`` itself for one."""
    if not place.active:
        return module
    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DistributedDataParallel(module, device_ids=[device.index])
    return DistributedDataParallel(module)


def sync_buffers(module: nn.Module, place: Distributed) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), as the checkpoint holds them."""
    if place.active:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def prepare_share(data: DataConfig, place: Distributed) -> None:
    """Prepare this rank's share of the manifest's videos, then wait for the other ranks.

    Every rank (of this machine or another one sharing the store's file system) decodes every
    ``world_size``-th video; afterwards every video is in the store and loading the dataset
    decodes nothing.
    """
    if not place.active:
        return
    manifest = read_manifest(data.manifest, root=data.dataset_root, classes=data.classes)
    prepare_rows(
        place.share(manifest.rows),
        store_root=data.store_root,
        prep=data.prepare,
        limits=data.limits,
        workers=data.workers,
        frame_folder_fps=data.frame_folder_fps,
    )
    place.barrier()


def prepare_under_torchrun(data: DataConfig) -> bool:
    """``vidfer prepare`` under torchrun: this rank prepares its share, then waits for the others.

    Returns:
        True on rank 0 (or without torchrun): the process that reports.
    """
    place = from_environment()
    if place.active:
        join(place, torch.device("cpu"))
        prepare_share(data, place)
        stop()
    return place.is_main


def evaluate_shared(
    evaluator: ClipEvaluator,
    items: Sequence[VideoItem],
    store: PreparedStore,
    place: Distributed,
) -> EvalOutcome:
    """:meth:`ClipEvaluator.evaluate` with every rank scoring its share of the videos (with
    rank 0's BatchNorm statistics); every rank gets the whole outcome."""
    if not place.active:
        return evaluator.evaluate(items, store)
    sync_buffers(evaluator.model, place)
    mine = place.share(items)
    gathered = place.gather(evaluator.evaluate(mine, store) if mine else None)
    shares = [share for share in gathered if share is not None]  # the first ranks have videos
    # Video i was scored by rank i % N, as its (i // N)-th video.
    order = [(i % place.world_size, i // place.world_size) for i in range(len(items))]
    return EvalOutcome(
        loss=sum(share.loss * len(share.labels) for share in shares) / len(items),
        probabilities=np.stack([shares[r].probabilities[k] for r, k in order]),
        labels=np.array([shares[r].labels[k] for r, k in order]),
        video_ids=[shares[r].video_ids[k] for r, k in order],
    )
