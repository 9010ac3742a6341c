"""``vidfer models`` on the meta device against building every model's weights on the CPU.

``vidfer models`` builds each registered clip model on the meta device (shapes only) to count
its parameters and its FLOPs per clip (``torch.utils.flop_counter.FlopCounterMode``). The
listing it replaced built every model for real on the CPU (c3d's 78M and fstcn's 207M
parameters allocated and initialised) and counted parameters only. Both run as fresh Python
processes, alternated so that load from other processes hits both alike; the script prints the
best wall and CPU times of each and their ratios.

Usage:
    .venv/bin/python benchmarks/models_listing.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

OLD = """
import vidfer.models
from vidfer.registry import MODELS
for name in MODELS.names():
    model = vidfer.models.build_model(name, num_classes=7)
    print(name, sum(p.numel() for p in model.parameters()))
"""


def _timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    commands = {
        "vidfer models (meta device, FLOPs)": [sys.executable, "-m", "vidfer", "models"],
        "old listing (weights built on the CPU)": [sys.executable, "-c", OLD],
        "import vidfer.models only": [sys.executable, "-c", "import vidfer.models"],
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(_timed(command))
    best = {
        name: (min(w for w, _ in runs), min(c for _, c in runs)) for name, runs in times.items()
    }
    for name, (wall, cpu) in best.items():
        print(f"{name:42s} wall {wall:6.1f} s   cpu {cpu:6.1f} s")
    new, old = (
        best["vidfer models (meta device, FLOPs)"],
        best["old listing (weights built on the CPU)"],
    )
    print(f"old / new: wall {old[0] / new[0]:.2f}x, cpu {old[1] / new[1]:.2f}x")


if __name__ == "__main__":
    main()
