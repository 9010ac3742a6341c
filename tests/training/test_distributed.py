"""Distributed training under torchrun: sharding, sampler state across ranks, and real 2-process
runs (gloo on the CPU) against one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from torch.utils.data import DistributedSampler

from vidfer.config import load_config
from vidfer.data.stochastic_softmax import StochasticSoftmax
from vidfer.io.checkpoint import load_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.io.writer import write_video
from vidfer.models.trained import load_run_model
from vidfer.pipelines import train
from vidfer.training.distributed import Distributed
from vidfer.training.sampler_sync import SamplerFeed, state_digest

from helpers import vidfer_forked

VIDEOS = 7  # training videos of the sampler test: not a multiple of 2, so one is repeated


@pytest.mark.parametrize(("count", "world"), [(10, 2), (7, 2), (7, 3), (2, 3)])
def test_shares_are_distributed_samplers(count, world):
    items = list(range(count))
    for rank in range(world):
        share = Distributed(rank, world).share(items, pad=True)
        expected = list(DistributedSampler(items, num_replicas=world, rank=rank, shuffle=False))
        assert share == expected
    unpadded = [Distributed(rank, world).share(items) for rank in range(world)]
    assert sorted(i for share in unpadded for i in share) == items  # each item once


def _sampler() -> StochasticSoftmax:
    sampler = StochasticSoftmax(clip_len=4, warmup=0, explore=1)
    sampler.bind([20 + 3 * v for v in range(VIDEOS)], [None] * VIDEOS)
    return sampler


def _observations(epoch: int) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
    """The epoch's draws in its order: (video, starts (1,), clean logits (1, K), label)."""
    rng = np.random.default_rng(epoch)
    order = rng.permutation(VIDEOS).tolist()
    return [
        (video, np.array([int(rng.integers(0, 15))]), rng.normal(size=(1, 3)), video % 3)
        for video in order
    ]


def _feed_rank(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    place = Distributed(rank, world)
    sampler = _sampler()
    feed = SamplerFeed(sampler, place)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for video, starts, logits, label in place.share(_observations(epoch), pad=True):
            feed.observe(video, starts, logits, label)
        feed.end_epoch(VIDEOS)
    Path(out, f"{rank}.json").write_text(json.dumps(state_digest(sampler.state_dict())))
    dist.destroy_process_group()


def test_every_rank_ends_each_epoch_with_the_one_process_sampler_state(tmp_path):
    single = _sampler()
    for epoch in range(3):
        single.set_epoch(epoch)
        for video, starts, logits, label in _observations(epoch):
            single.observe(video, starts, logits, label)
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.start_processes(_feed_rank, args=(2, init, str(tmp_path)), nprocs=2, start_method="fork")
    digests = {json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(2)}
    assert digests == {state_digest(single.state_dict())}
    assert all(len(history) == 3 for history in single.history)  # one draw per epoch


def _write_colour_dataset(root: Path) -> Path:
    """Red or blue squares moving over noise: 16 training, 4 validation, 4 test videos."""
    lines = ["path,label,split,subject"]
    rng = np.random.default_rng(0)
    splits = ["train"] * 8 + ["val", "val", "test", "test"]
    for label, channel in (("red", 0), ("blue", 2)):
        for i, split in enumerate(splits):
            video = rng.integers(0, 60, size=(16, 24, 24, 3), dtype=np.uint8)
            row, col = rng.integers(2, 14, size=2)
            for t in range(16):
                video[t, row : row + 8, (col + t) % 16 : (col + t) % 16 + 8, channel] = 230
            write_video(root / f"{label}/{i}.mp4", video, 10.0, crf=0)
            lines.append(f"{label}/{i}.mp4,{label},{split},s{i}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process, whatever their number


def _vidfer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = vidfer_forked(*args, cwd=cwd, env=ENV)  # it starts torchrun and its workers
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree = [pid]
    for parent in tree:
        tree.extend(children.get(parent, []))
    return tree


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# What ``vidfer train ... --nproc 2`` starts (vidfer.training.distributed.launch), without the
# vidfer process that waits for it: the runs killed below start so.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def _kill_at(
    args: list[str], cwd: Path, run: Path, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Start ``vidfer ARGS`` on 2 processes with torchrun, SIGKILL all its processes once the
    metadata of ``run``'s last checkpoint is ``wanted``; returns the metadata of the checkpoint
    left. (torchrun starts each worker in a session of its own: killing torchrun's process group
    would leave them training.)"""
    process = subprocess.Popen(
        [*TORCHRUN, "-m", "vidfer", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    meta = run / "checkpoints" / "last.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if meta.exists() and wanted(json.loads(meta.read_text())):
            tree = _process_tree(process.pid)
            for pid in tree:
                os.kill(pid, signal.SIGKILL)
            while not all(_gone(pid) for pid in tree):  # none writes any more
                time.sleep(0.01)
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return dict(json.loads(meta.read_text()))


@pytest.mark.slow
def test_two_processes_train_like_one_and_resume_exactly(tmp_path):
    """Two processes train as one does and write one consistent run. With
    ``train.checkpoint_every_steps``, rank 0 writes mid-epoch checkpoints with every rank's
    random states, held sampler observations, running sums and BatchNorm statistics: a run
    SIGKILLed at its first one and resumed on 2 processes, then SIGKILLed after an epoch and
    resumed again, ends with the uninterrupted run's weights and sampler state, bit for bit.
    (One run of each kind: the uninterrupted run is the reference of both resumes.)"""
    manifest = _write_colour_dataset(tmp_path / "colours")
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 16}, "workers": 1},
        "sampler": {
            "name": "stochastic_softmax",
            "clip_len": 8,
            "params": {"warmup": 1, "explore": 1},
        },
        "transforms": {"size": 16, "flip": 0.0, "crop_scale": [0.9, 1.0]},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "optim": {"lr": 0.003},
        # 16 videos, 2 per process and step: 4 steps per epoch, a checkpoint after steps 2, 6, ...
        "train": {"epochs": 6, "batch_size": 4, "checkpoint_every_steps": 2},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    train(load_config(tmp_path / "run.yaml"), tmp_path / "one")  # one process, here
    two = _vidfer("train", "run.yaml", "--out", "two", "--nproc", "2", cwd=tmp_path)
    assert two.stdout.count("trained 6 epoch(s)") == 1  # rank 0 alone reports

    accuracy = {}
    for name in ("one", "two"):
        metrics = json.loads((tmp_path / name / "eval_test" / "metrics.json").read_text())
        accuracy[name] = metrics["accuracy"]
    assert accuracy["one"] >= 0.75 and accuracy["two"] >= 0.75  # the same class: it learned

    run = RunDir(tmp_path / "two")
    lines = run.metrics_path.read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 7))  # written once
    saved = load_checkpoint(run.checkpoint("last"))
    assert len(saved["rng_ranks"]) == 2 and saved["epoch"] == 6 and saved["step"] == 24
    assert all(len(history) == 6 for history in saved["sampler"]["history"])  # every epoch
    report = json.loads((tmp_path / "two" / "distributed.json").read_text())
    assert report["world_size"] == 2 and report["backend"] == "gloo"
    assert len(set(report["sampler_state_sha256"])) == 1
    assert report["sampler_state_sha256"][0] == state_digest(saved["sampler"])
    model, _ = load_run_model(run, "cpu")  # one loadable model
    assert all(torch.isfinite(p).all() for p in model.parameters())

    # Killed inside an epoch, resumed on 2 processes and killed after an epoch, resumed again.
    killed = tmp_path / "killed"
    args = ["train", "run.yaml", "--out", "killed"]
    meta = _kill_at(args, tmp_path, killed, lambda m: bool(m.get("batch")))
    assert meta["batch"] > 0 and meta["step"] < 24  # killed inside an epoch
    mid = load_checkpoint(killed / "checkpoints" / "last.pt")
    assert len(mid["held_ranks"]) == len(mid["rng_ranks"]) == 2  # every rank's own state
    resume = ["train", "--resume", "killed"]
    after_epoch = meta["epoch"] + 2  # an end-of-epoch checkpoint (no batch) of a later epoch
    left = _kill_at(
        resume, tmp_path, killed, lambda m: m["epoch"] >= after_epoch and not m.get("batch")
    )
    assert left["epoch"] < 6
    _vidfer(*resume, "--nproc", "2", cwd=tmp_path)
    resumed = load_checkpoint(killed / "checkpoints" / "last.pt")
    assert resumed["epoch"] == 6 and resumed["step"] == saved["step"]
    for name, tensor in saved["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    assert state_digest(resumed["sampler"]) == state_digest(saved["sampler"])
