"""GPU self-check: does every GPU path of vidfer run on this machine, how fast, and does it agree?

On a machine with CUDA it runs, in a few minutes, the same small pieces of work on the GPU and on
the CPU and prints one table row per check: what ran, its time on each device, the speed-up,
and whether the results agree.

- a short training of the temporally dense 3D ResNet-18 (``resnet3d_18``, temporal stride 1, no
  temporal padding) with ``train.amp`` bf16, with fp16 (loss scaling), with ``channels_last``,
  with ``compile``, each against the same training in float32 on the CPU (agreement: the test
  accuracy, and the largest difference of a video's class probabilities);
- the same training under ``torchrun`` (one process, NCCL);
- dense evaluation of one trained run on each device (same weights: the probabilities should
  agree to float precision);
- MTCNN face detection on the carphone sample, through ``vidfer prepare``'s path
  (``faces.device``, sandboxed workers): the main face's track on each device;
- ``vidfer predict`` of a trained run on a new video.

Without CUDA it says so and exits 0. What runs where is decided by :func:`plan` alone, a pure
function of what the machine offers (:class:`Machine`), tested on the CPU for every case.

Run it (``make gpu-check``)::

    .venv/bin/python benchmarks/gpu.py [--out FOLDER] [--epochs 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

NO_CUDA = "no CUDA device: the GPU self-check has nothing to run on this machine (exit 0)"


@dataclass(frozen=True)
class Machine:
    """What the machine offers the GPU paths.

    Attributes:
        cuda: A CUDA device is available.
        bf16: It supports bfloat16.
        nccl: torch was built with NCCL (distributed training on GPUs).
        name: The device's name, for the report.
        gpus: How many CUDA devices.
    """

    cuda: bool
    bf16: bool = False
    nccl: bool = False
    name: str = ""
    gpus: int = 1

    @classmethod
    def here(cls) -> Machine:
        """This machine (the only place CUDA is queried)."""
        import torch
        import torch.distributed as dist

        if not torch.cuda.is_available():
            return cls(cuda=False)
        return cls(
            cuda=True,
            bf16=torch.cuda.is_bf16_supported(),
            nccl=dist.is_available() and dist.is_nccl_available(),
            name=torch.cuda.get_device_name(0),
            gpus=torch.cuda.device_count(),
        )


@dataclass(frozen=True)
class Check:
    """One row of the table.

    Attributes:
        name: What is checked.
        work: ``train``, ``torchrun``, ``evaluate``, ``mtcnn`` or ``predict``.
        train: ``train.*`` options of the GPU side (the CPU side trains in float32).
        skip: Why it does not run here (None: it runs).
        processes: torchrun's processes (one per GPU, at most 2).
    """

    name: str
    work: str
    train: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None
    processes: int = 1


def plan(machine: Machine, device: str = "cuda") -> list[Check]:
    """The checks to run on ``machine`` (none without CUDA), each with its GPU side's options.

    Args:
        machine: What the machine offers.
        device: The accelerator's device name in the runs' configs.
    """
    if not machine.cuda:
        return []
    on = {"device": device}
    return [
        Check(
            "train, amp bf16",
            "train",
            {**on, "amp": "bf16"},
            None if machine.bf16 else "this GPU has no bfloat16",
        ),
        Check("train, amp fp16 (loss scaling)", "train", {**on, "amp": "fp16"}),
        Check("train, channels_last", "train", {**on, "amp": "off", "channels_last": True}),
        Check("train, compile", "train", {**on, "amp": "off", "compile": True}),
        Check(
            f"torchrun, {min(machine.gpus, 2)} process(es), NCCL",
            "torchrun",
            {**on, "amp": "off"},
            None if machine.nccl else "torch was built without NCCL",
            processes=min(machine.gpus, 2),
        ),
        Check("dense evaluation", "evaluate", {**on, "amp": "off"}),
        Check("MTCNN face detection", "mtcnn"),
        Check("vidfer predict", "predict", {**on, "amp": "off"}),
    ]


@dataclass
class Outcome:
    """A check's times (seconds) on each device and what was compared."""

    gpu_s: float
    cpu_s: float
    agreement: str
    ok: bool


def _run_config(manifest: Path, store: Path, epochs: int, train: dict[str, Any]) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {"manifest": str(manifest), "store": str(store), "prepare": {"size": 32}},
        "sampler": {"clip_len": 40},
        "transforms": {"size": 32},
        "model": {
            "name": "resnet3d_18",
            "params": {"width": 0.5, "temporal_stride": 1, "temporal_padding": False},
        },
        "train": {"epochs": epochs, "batch_size": 4, **train},
    }


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def _probabilities(run: Path, split: str = "test") -> tuple[float, np.ndarray]:
    """A run's accuracy on ``split`` and its video probabilities ``(N, K)``."""
    metrics = json.loads((run / f"eval_{split}" / "metrics.json").read_text())
    with open(run / f"eval_{split}" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = [name for name in rows[0] if name.startswith("p_")]
    return float(metrics["accuracy"]), np.array([[float(r[c]) for c in columns] for r in rows])


def _compare_runs(gpu: Path, cpu: Path, tolerance: float) -> tuple[str, bool]:
    gpu_acc, gpu_p = _probabilities(gpu)
    cpu_acc, cpu_p = _probabilities(cpu)
    diff = float(np.abs(gpu_p - cpu_p).max())
    text = f"accuracy {gpu_acc:.2f} vs {cpu_acc:.2f}, max |p diff| {diff:.2g}"
    return text, diff <= tolerance


class SelfCheck:
    """The work of every check, on the GPU side and the CPU side, in one folder."""

    def __init__(self, out: Path, epochs: int, accelerator: str) -> None:
        self.out = out
        self.epochs = epochs
        self.accelerator = accelerator
        self.manifest = self._dataset()
        self._cpu_run: tuple[float, Path] | None = None

    def _dataset(self) -> Path:
        from vidfer.data.synth import make_expressions

        return make_expressions(self.out / "data", videos_per_class=3, size=32)

    def _config(self, name: str, train: dict[str, Any]) -> Path:
        path = self.out / f"{name}.yaml"
        store = self.out / "store"
        path.write_text(yaml.safe_dump(_run_config(self.manifest, store, self.epochs, train)))
        return path

    def _train(self, name: str, train: dict[str, Any]) -> tuple[float, Path]:
        from vidfer import load_config
        from vidfer import train as train_run

        config = load_config(self._config(name, train))
        seconds, _ = _timed(lambda: train_run(config, self.out / name))
        return seconds, self.out / name

    def cpu_run(self) -> tuple[float, Path]:
        """The CPU reference training (float32), trained once."""
        if self._cpu_run is None:
            self._cpu_run = self._train("cpu", {"device": "cpu", "amp": "off"})
        return self._cpu_run

    def run(self, check: Check) -> Outcome:
        """Do ``check``'s work on both sides."""
        work = {
            "train": self._check_train,
            "torchrun": self._check_torchrun,
            "evaluate": self._check_evaluate,
            "mtcnn": self._check_mtcnn,
            "predict": self._check_predict,
        }[check.work]
        return work(check)

    def _check_train(self, check: Check) -> Outcome:
        cpu_s, cpu = self.cpu_run()
        name = "gpu_" + "_".join(f"{k}_{v}" for k, v in check.train.items() if k != "device")
        gpu_s, gpu = self._train(name, check.train)
        # Low precision changes every step a little: the same class, probabilities within 0.2.
        text, ok = _compare_runs(gpu, cpu, tolerance=0.2)
        return Outcome(gpu_s, cpu_s, text, ok)

    def _check_torchrun(self, check: Check) -> Outcome:
        cpu_s, cpu = self.cpu_run()
        config = self._config("torchrun", check.train)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc-per-node={check.processes}", "-m", "vidfer", "train", str(config)]
        command += ["--out", str(self.out / "torchrun")]
        gpu_s, done = _timed(lambda: subprocess.run(command, check=False))
        if done.returncode != 0:
            return Outcome(gpu_s, cpu_s, f"torchrun exited with {done.returncode}", False)
        # vidfer joins a process group (NCCL on GPUs) from 2 processes; one trains alone.
        report = self.out / "torchrun" / "distributed.json"
        backend = json.loads(report.read_text())["backend"] if report.exists() else "none"
        text, ok = _compare_runs(self.out / "torchrun", cpu, tolerance=0.2)
        return Outcome(gpu_s, cpu_s, f"process group {backend}, {text}", ok)

    def _evaluate_on(self, run: Path, device: str, name: str) -> tuple[float, Path]:
        """Evaluate ``run``'s weights on ``device`` (a copy of the run whose config says so)."""
        import shutil

        from vidfer import evaluate_run

        copy = self.out / name
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval_*"))
        config = yaml.safe_load((copy / "config.yaml").read_text())
        config["train"]["device"] = device
        (copy / "config.yaml").write_text(yaml.safe_dump(config))
        seconds, _ = _timed(lambda: evaluate_run(copy, "test"))
        return seconds, copy

    def _check_evaluate(self, check: Check) -> Outcome:
        _, cpu = self.cpu_run()
        gpu_s, on_gpu = self._evaluate_on(cpu, check.train["device"], "eval_gpu")
        cpu_s, on_cpu = self._evaluate_on(cpu, "cpu", "eval_cpu")
        text, ok = _compare_runs(on_gpu, on_cpu, tolerance=1e-3)
        return Outcome(gpu_s, cpu_s, text, ok)

    def _check_mtcnn(self, check: Check) -> Outcome:
        """``vidfer prepare``'s face pipeline (``load_dataset(..., device=)``, as ``--device``
        sets ``faces.device``: sandboxed workers, MTCNN on the device) on the carphone sample,
        into one store per device; its main-face track compared frame by frame."""
        import shutil

        from vidfer import load_dataset
        from vidfer.assets import asset_path, fetch_assets
        from vidfer.config import DataConfig

        fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"])
        folder = self.out / "faces"
        folder.mkdir(exist_ok=True)
        shutil.copy(asset_path("carphone"), folder / "carphone.mp4")  # 120 frames, 176 x 144
        (folder / "manifest.csv").write_text("path,label\ncarphone.mp4,talk\n")
        seconds, tracks = {}, {}
        for side, device in (("gpu", self.accelerator), ("cpu", "cpu")):
            data = DataConfig.model_validate(
                {
                    "manifest": folder / "manifest.csv",
                    "store": folder / f"store_{side}",
                    "workers": 1,
                    "prepare": {"faces": {"size": 64}},
                }
            )
            seconds[side], dataset = _timed(lambda d=data, on=device: load_dataset(d, device=on))
            [item] = dataset.items
            record = dataset.store.load_record(item.key)
            tracks[side] = [] if record is None else record.faces or []
        pairs = list(zip(tracks["gpu"], tracks["cpu"], strict=True))
        same = sum(g["status"] == c["status"] for g, c in pairs)
        boxes = [(g["box"], c["box"]) for g, c in pairs if g["box"] and c["box"]]
        shift = max((float(np.abs(np.subtract(g, c)).max()) for g, c in boxes), default=0.0)
        text = f"face status equal in {same}/{len(pairs)} frames, max box shift {shift:.2g} px"
        ok = bool(pairs) and same == len(pairs) and shift < 1
        return Outcome(seconds["gpu"], seconds["cpu"], text, ok)

    def _check_predict(self, check: Check) -> Outcome:
        from vidfer import predict_video

        _, cpu = self.cpu_run()
        video = next(iter(sorted((self.out / "data").rglob("*.mp4"))))
        _, on_gpu = self._evaluate_on(cpu, check.train["device"], "predict_gpu_run")
        seconds, found = {}, {}
        for side, run in (("gpu", on_gpu), ("cpu", cpu)):
            out = self.out / f"predict_{side}"
            seconds[side], found[side] = _timed(lambda r=run, o=out: predict_video(video, o, r))
        labels = [found[side].label for side in ("gpu", "cpu")]
        diff = max(
            abs(found["gpu"].probabilities[k] - p) for k, p in found["cpu"].probabilities.items()
        )
        text = f"label {labels[0]} vs {labels[1]}, max |p diff| {diff:.2g}"
        return Outcome(seconds["gpu"], seconds["cpu"], text, labels[0] == labels[1] and diff < 1e-3)


def report(machine: Machine, rows: list[tuple[Check, Outcome | None]]) -> str:
    """The table: one row per check."""
    lines = [
        f"GPU self-check on {machine.name or 'the CPU (simulated)'}",
        "| check | ran | GPU s | CPU s | speed-up | agreement | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for check, outcome in rows:
        if outcome is None:
            lines.append(f"| {check.name} | skipped: {check.skip} | | | | | |")
            continue
        speed = outcome.cpu_s / outcome.gpu_s if outcome.gpu_s else float("nan")
        verdict = "ok" if outcome.ok else "DIFFERS"
        lines.append(
            f"| {check.name} | yes | {outcome.gpu_s:.1f} | {outcome.cpu_s:.1f} | {speed:.1f}x "
            f"| {outcome.agreement} | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each training")
    parser.add_argument(
        "--simulate-on-cpu",
        action="store_true",
        help="run every check with the CPU standing in for the GPU (to test this script)",
    )
    args = parser.parse_args(argv)
    if args.simulate_on_cpu:
        machine, device = Machine(cuda=True, bf16=True, nccl=True), "cpu"
    else:
        machine, device = Machine.here(), "cuda"
    checks = plan(machine, device)
    if not checks:
        print(NO_CUDA)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        work = SelfCheck(out, args.epochs, device)
        rows = [(check, None if check.skip else work.run(check)) for check in checks]
        print(report(machine, rows))
    return 0 if all(outcome is None or outcome.ok for _, outcome in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
