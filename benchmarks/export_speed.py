"""Speed of exported models on the CPU: PyTorch against ONNX Runtime and TorchScript.

Exports (``vidfer.export.write_model``, as ``vidfer export`` does) a 3D ResNet-18 (``--width``,
random weights: speed does not depend on them) and the FER2013 mini-Xception, then times, in
alternating rounds on the same inputs, one forward pass of each engine: the 3D model on a clip
``(1, 3, --frames, --size, --size)``, the FER model on ``--faces`` faces. It prints the best time
of each, the ratio to PyTorch and the largest score difference.

Usage:
    .venv/bin/python benchmarks/export_speed.py [--threads 2] [--frames 32] [--size 112]
        [--width 1.0] [--faces 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vidfer.export import METADATA, exportable, load_exported, write_model
from vidfer.io.atomic import atomic_write_json
from vidfer.models import build_model
from vidfer.models.mini_xception import load_mini_xception


def best_of(function: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def compare(name: str, module: torch.nn.Module, example: torch.Tensor, dynamic: dict[int, str],
            rounds: int, folder: Path) -> None:  # fmt: skip
    with torch.no_grad():
        expected = module(example).numpy()
    engines: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for fmt in ("onnx", "torchscript"):
        out = folder / f"{name}_{fmt}"
        write_model(module, example, fmt, out / ("model.onnx" if fmt == "onnx" else "model.pt"),
                    dynamic)  # fmt: skip
        meta = {"format": fmt, "file": "model.onnx" if fmt == "onnx" else "model.pt"}
        atomic_write_json(out / METADATA, meta)
        engines[fmt] = load_exported(out)[0]
    data = example.numpy()

    def pytorch() -> None:
        with torch.no_grad():
            module(example)

    timings = {"pytorch": 0.0, **{fmt: 0.0 for fmt in engines}}
    timings["pytorch"] = best_of(pytorch, rounds)
    for fmt, runner in engines.items():
        runner(data)  # warm-up
        timings[fmt] = best_of(lambda runner=runner: runner(data), rounds)
    print(f"{name}: input {tuple(example.shape)}")
    for fmt, seconds in timings.items():
        diff = 0.0 if fmt == "pytorch" else float(np.abs(engines[fmt](data) - expected).max())
        ratio = timings["pytorch"] / seconds
        print(f"  {fmt:<12} {seconds * 1000:8.1f} ms  {ratio:5.2f}x PyTorch  max |diff| {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--faces", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads: {args.threads} (PyTorch; ONNX Runtime uses its default)")
    with tempfile.TemporaryDirectory() as folder:
        model = build_model("resnet3d_18", num_classes=7, width=args.width).eval()
        clip = torch.randn(1, 3, args.frames, args.size, args.size)
        compare("resnet3d_18", exportable(model).eval(), clip, {0: "batch", 2: "time"},
                args.rounds, Path(folder))  # fmt: skip
        fer = load_mini_xception().eval()
        faces = torch.rand(args.faces, 1, 64, 64) * 2 - 1
        compare("fer2013_mini_xception", fer, faces, {0: "batch"}, args.rounds, Path(folder))


if __name__ == "__main__":
    main()
