"""Time one-pass dense scoring of a video against scoring each of its windows separately.

The temporally dense resnet3d_18 without temporal padding gives, in one forward pass over a whole
video, exactly the score of every receptive-field window (one per output step). The alternative is
a forward pass per window, batched in chunks of 8 windows to be fair. Both are timed side by side
in one run (alternating, so that load from other processes hits both alike), their scores
compared, and the speed ratio printed next to the ratio of floating-point operations, which is the
ratio to expect on an idle machine.

Usage:
    .venv/bin/python benchmarks/dense_vs_windows.py [--width 0.5] [--frames 64] [--size 112]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vidfer.models import build_model

CHUNK = 8


def seconds(run: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    """Wall time of one call of ``run``, and its result."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def flops(model: nn.Module, clip_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one forward pass, counted on the meta device (no compute)."""
    meta_model = copy.deepcopy(model).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(torch.empty(clip_shape, device="meta"))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5, help="channel multiplier")
    parser.add_argument("--frames", type=int, default=64, help="frames in the video")
    parser.add_argument("--size", type=int, default=112, help="frame height and width")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (best is kept)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    torch.manual_seed(0)
    model = build_model("resnet3d_18", 7, width=args.width, temporal_padding=False).eval()
    window = model.geometry.receptive_field
    if args.frames < window:
        parser.error(f"--frames must be at least the receptive field, {window}")
    video = torch.randn(1, 3, args.frames, args.size, args.size)
    steps = model.geometry.output_length(args.frames)

    @torch.inference_mode()
    def one_pass() -> torch.Tensor:
        return model(video)[0]  # (K, T')

    @torch.inference_mode()
    def windows() -> torch.Tensor:
        scores = []
        for first in range(0, steps, CHUNK):
            starts = range(first, min(first + CHUNK, steps))
            # (n, 3, window, H, W): one clip per window, n <= CHUNK
            clips = torch.cat([video[:, :, s : s + window] for s in starts])
            scores.append(model(clips)[:, :, 0])  # (n, K, 1) -> (n, K)
        return torch.cat(scores).T  # (T', K) -> (K, T')

    # Warm-up, then alternate the two so that both see the same load; keep the best of each.
    one_pass()
    windows()
    dense_times, window_times = [], []
    for _ in range(args.repeats):
        dense_time, dense_scores = seconds(one_pass)
        window_time, window_scores = seconds(windows)
        dense_times.append(dense_time)
        window_times.append(window_time)
    difference = (dense_scores - window_scores).abs().max().item()
    clip_shape = (1, 3, window, args.size, args.size)
    flop_ratio = steps * flops(model, clip_shape) / flops(model, tuple(video.shape))

    print(
        f"resnet3d_18 dense unpadded, width {args.width}, video {args.frames}x{args.size}x"
        f"{args.size}, {steps} windows of {window} frames, {torch.get_num_threads()} threads, "
        f"best of {args.repeats}, load average {os.getloadavg()[0]:.2f}"
    )
    ratios = [w / d for d, w in zip(dense_times, window_times, strict=True)]
    print(f"one pass:               {min(dense_times):8.3f} s (best)")
    print(f"windows (chunks of {CHUNK}):  {min(window_times):8.3f} s (best)")
    print(f"speed ratio:            {min(window_times) / min(dense_times):8.1f}x (best times)")
    print(f"                        {statistics.median(ratios):8.1f}x (median of the pairs)")
    print(f"FLOP ratio (ideal):     {flop_ratio:8.1f}x")
    print(f"max abs score diff:     {difference:.2e}")


if __name__ == "__main__":
    main()
