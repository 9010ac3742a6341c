"""vidfer's 3D ResNet-18 against torchvision's ``r3d_18``: clips per second and achieved GFLOP/s.

Both models are the same architecture (vidfer's ``resnet3d_18`` with ``temporal_stride=2``, the
original's, and torchvision's ``r3d_18``), fed the same clips ``(B, 3, 16, 112, 112)``. For each
it measures the forward pass (eval mode, inference) and one training step (forward, cross-entropy,
backward, SGD step), alternating the models (in both orders) so that load from other processes
hits both alike, and prints the best of ``--repeats`` rounds and the median of the per-round
ratios. FLOPs are counted with ``torch.utils.flop_counter`` (forward,
and forward + backward for the step); achieved GFLOP/s is compared with the float32 matrix
product rate measured on this machine in the same run (a square ``torch.mm``, best of several).

``--variants`` adds vidfer's model with ``channels_last_3d`` memory format and with bfloat16
autocast, the switches of the GPU path (``train.channels_last``, ``train.amp``), measured here on
the CPU.

Usage:
    .venv/bin/python benchmarks/models.py [--batch 2] [--repeats 3] [--matmul 2048] [--variants]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.video import r3d_18

from vidfer.models import build_model

CLASSES = 7


@dataclass
class Entry:
    """One model setting: how to build its input and run it."""

    name: str
    model: nn.Module
    channels_last: bool = False
    bf16: bool = False
    forward_times: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    forward_flops: int = 0
    step_flops: int = 0

    @property
    def forward_s(self) -> float:
        return min(self.forward_times)

    @property
    def step_s(self) -> float:
        return min(self.step_times)

    def context(self) -> contextlib.AbstractContextManager[object]:
        if self.bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def clip(self, clips: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return clips.to(memory_format=torch.channels_last_3d)
        return clips

    def logits(self, clips: torch.Tensor) -> torch.Tensor:
        """``(B, K)``: vidfer's score map ``(B, K, T')`` is averaged over time."""
        out = self.model(self.clip(clips))
        return out.mean(dim=2) if out.dim() == 3 else out


def best_seconds(run: Callable[[], object], repeats: int, *, warm: bool = True) -> float:
    """Best wall time of ``repeats`` calls of ``run`` (after one warm-up call if ``warm``)."""
    if warm:
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(size: int, repeats: int) -> float:
    """float32 ``size x size`` matrix product rate, best of ``repeats`` (x 5 products)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = best_seconds(lambda: [a @ b for _ in range(5)], repeats) / 5
    return 2 * size**3 / seconds / 1e9


def count_flops(run: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="clips per batch")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (best is kept)")
    parser.add_argument("--matmul", type=int, default=2048, help="matrix side for the rate")
    parser.add_argument("--variants", action="store_true", help="add channels_last_3d and bf16")
    args = parser.parse_args()

    torch.manual_seed(0)
    entries = [
        Entry("vidfer resnet3d_18", build_model("resnet3d_18", CLASSES, temporal_stride=2)),
        Entry("torchvision r3d_18", r3d_18(num_classes=CLASSES)),
    ]
    if args.variants:
        channels_last = build_model("resnet3d_18", CLASSES, temporal_stride=2)
        entries.append(
            Entry(
                "vidfer, channels_last_3d",
                channels_last.to(memory_format=torch.channels_last_3d),
                channels_last=True,
            )
        )
        bf16 = build_model("resnet3d_18", CLASSES, temporal_stride=2)
        entries.append(Entry("vidfer, bf16 autocast", bf16, bf16=True))
    clips = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    labels = torch.arange(args.batch) % CLASSES

    def forward(entry: Entry) -> Callable[[], object]:
        def run() -> object:
            entry.model.eval()
            with torch.inference_mode(), entry.context():
                return entry.logits(clips)

        return run

    def step(entry: Entry) -> Callable[[], object]:
        optimizer = torch.optim.SGD(entry.model.parameters(), lr=1e-6)

        def run() -> object:
            entry.model.train()
            optimizer.zero_grad(set_to_none=True)
            with entry.context():
                loss = F.cross_entropy(entry.logits(clips).float(), labels)
            loss.backward()
            optimizer.step()
            return loss

        return run

    for entry in entries:
        entry.forward_flops = count_flops(forward(entry))
        entry.step_flops = count_flops(step(entry))
    for entry in entries:  # warm-up
        forward(entry)()
        step(entry)()
    rates = []
    for repeat in range(args.repeats):  # alternate everything, so that load hits all alike
        rates.append(matmul_gflops(args.matmul, 2))
        order = entries if repeat % 2 == 0 else entries[::-1]
        for entry in order:
            entry.forward_times.append(best_seconds(forward(entry), 1, warm=False))
        for entry in order:
            entry.step_times.append(best_seconds(step(entry), 1, warm=False))
    matmul = max(rates)

    print(
        f"clips {args.batch}x3x{args.frames}x{args.size}x{args.size}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"float32 matmul {args.matmul}x{args.matmul}: {matmul:.1f} GFLOP/s")
    header = (
        f"{'model':<26} {'fwd clips/s':>11} {'fwd GFLOP/s':>11} {'% mm':>5} "
        f"{'step clips/s':>12} {'step GFLOP/s':>12} {'% mm':>5}"
    )
    print(header)
    for entry in entries:
        forward_rate = entry.forward_flops / entry.forward_s / 1e9
        step_rate = entry.step_flops / entry.step_s / 1e9
        print(
            f"{entry.name:<26} {args.batch / entry.forward_s:11.3f} {forward_rate:11.1f} "
            f"{100 * forward_rate / matmul:5.0f} {args.batch / entry.step_s:12.3f} "
            f"{step_rate:12.1f} {100 * step_rate / matmul:5.0f}"
        )
    ours, theirs = entries[0], entries[1]

    def paired(mine: list[float], others: list[float]) -> float:
        return statistics.median(o / m for m, o in zip(mine, others, strict=True))

    print(
        f"vidfer / torchvision speed (best times; median of the {args.repeats} paired rounds): "
        f"forward {theirs.forward_s / ours.forward_s:.3f} "
        f"({paired(ours.forward_times, theirs.forward_times):.3f}), training step "
        f"{theirs.step_s / ours.step_s:.3f} ({paired(ours.step_times, theirs.step_times):.3f}); "
        f"FLOPs {ours.forward_flops / 1e9:.1f} vs {theirs.forward_flops / 1e9:.1f} G forward"
    )


if __name__ == "__main__":
    main()
