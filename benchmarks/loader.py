"""Does the loader starve the model? Steps fed by the real loader vs one batch in memory.

A synthetic ``actions`` set is prepared into the store (memory-mapped uint8 frames), then the same
training step (the model, clips and augmentation of a run config, by default the repository's
``configs/actions_resnet3d18.yaml``: forward, cross-entropy, backward, AdamW step) is timed over
one epoch fed by vidfer's loader (``EpochLoader``, as ``vidfer train`` uses it: the sampler's
draws, clip augmentation in ``--workers`` worker processes that persist across epochs) and over
the same number of steps on one batch made beforehand and kept in memory. The two alternate for
``--epochs`` rounds, so that machine load hits both alike; the ratio of the medians is what the
loader adds to a step, and the time a step waited for its batch says whether the loader starved
it. The loader alone (no model) is also timed, in clips per second.

Usage:
    .venv/bin/python benchmarks/loader.py [--config configs/actions_resnet3d18.yaml]
        [--set KEY=VALUE ...] [--workers 2] [--epochs 3] [--videos-per-class 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vidfer.config import load_config
from vidfer.data.dataset import ClipDataset, ClipItem
from vidfer.data.prepared import load_dataset
from vidfer.data.sampler_zoo import sampler_from_config
from vidfer.data.synth import make_actions
from vidfer.data.transforms import build_clip_transform
from vidfer.models import model_from_config
from vidfer.models.base import VideoModel
from vidfer.training.distributed import Distributed
from vidfer.training.epoch import EpochLoader

CONFIG = Path(__file__).parents[1] / "configs" / "actions_resnet3d18.yaml"


def step(
    model: VideoModel, optimizer: torch.optim.Optimizer, clips: torch.Tensor, labels: torch.Tensor
) -> None:
    """One training step on clips ``(B, 1, C, L, H, W)``."""
    optimizer.zero_grad(set_to_none=True)
    scores = model(clips.flatten(0, 1)).mean(dim=2)  # (B, K, T') -> (B, K)
    F.cross_entropy(scores, labels).backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="the run config to load for")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override an option"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="alternating rounds")
    parser.add_argument("--videos-per-class", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vidfer_loader_"))
    try:
        manifest = make_actions(work / "data", videos_per_class=args.videos_per_class, seed=0)
        overrides = [f"data.manifest={manifest}", f"train.num_workers={args.workers}"]
        config = load_config(args.config, [*overrides, *args.set])
        data = load_dataset(config.data)
        items = data.split("train")
        dataset = ClipDataset(
            items,
            data.store,
            sampler_from_config(config.sampler),
            build_clip_transform(config.transforms, train=True),
            config.seed,
        )
        torch.manual_seed(0)
        model = model_from_config(config.model, num_classes=len(data.manifest.classes)).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loaders = EpochLoader(dataset, config, Distributed(), torch.device("cpu"))

        def loader(epoch: int) -> DataLoader[ClipItem]:
            dataset.set_epoch(epoch)
            return loaders.epoch(epoch, skip=0)

        batch = next(iter(loader(0)))
        held = (batch.clips.clone(), batch.label.clone())
        steps = len(loader(0))

        fed, waits, in_memory, alone = [], [], [], []
        step(model, optimizer, *held)  # warm-up
        for epoch in range(args.epochs):
            started = time.perf_counter()
            waited, ready = 0.0, started
            for item in loader(epoch):
                waited += time.perf_counter() - ready  # the step waited for its batch
                step(model, optimizer, item.clips, item.label)
                ready = time.perf_counter()
            fed.append((time.perf_counter() - started) / steps)
            waits.append(waited / steps)
            started = time.perf_counter()
            for _ in range(steps):
                step(model, optimizer, *held)
            in_memory.append((time.perf_counter() - started) / steps)
            started = time.perf_counter()
            clips = sum(len(item.label) for item in loader(epoch))
            alone.append(clips / (time.perf_counter() - started))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    size, clip_len = config.transforms.size, config.sampler.clip_len
    print(
        f"{args.config.name} {' '.join(args.set)}: {config.model.name} "
        f"{config.model.params}, clips {config.train.batch_size}x3x{clip_len}x{size}x{size}, "
        f"{len(items)} training videos = {steps} steps per epoch, {args.workers} loader workers, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )
    fed_s, memory_s = statistics.median(fed), statistics.median(in_memory)
    print(f"step fed by the loader (median of {args.epochs} epochs): {fed_s:.3f} s")
    print(f"step on a batch in memory (median):            {memory_s:.3f} s")
    print(f"the loader adds: {100 * (fed_s / memory_s - 1):+.1f} % per step")
    print(f"  of which waiting for a batch: {statistics.median(waits):.3f} s per step")
    print(f"loader alone: {statistics.median(alone):.1f} clips/s")


if __name__ == "__main__":
    main()
