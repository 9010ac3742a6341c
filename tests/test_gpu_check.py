"""benchmarks/gpu.py, the GPU self-check: what runs where is a pure function of the machine
(every CUDA branch selected here on the CPU), and on this CUDA-less machine it says so, exit 0."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


def test_without_cuda_nothing_runs(gpu):
    assert gpu.plan(gpu.Machine(cuda=False)) == []
    assert gpu.plan(gpu.Machine(cuda=False, bf16=True, nccl=True)) == []


def test_a_full_gpu_runs_every_check_on_the_device(gpu):
    checks = gpu.plan(gpu.Machine(cuda=True, bf16=True, nccl=True, name="test"))
    assert all(check.skip is None for check in checks)
    by_name = {check.name: check for check in checks}
    assert by_name["train, amp bf16"].train == {"device": "cuda", "amp": "bf16"}
    assert by_name["train, amp fp16 (loss scaling)"].train["amp"] == "fp16"
    assert by_name["train, channels_last"].train["channels_last"] is True
    assert by_name["train, compile"].train["compile"] is True
    assert {check.work for check in checks} == {
        "train",
        "torchrun",
        "evaluate",
        "mtcnn",
        "predict",
    }
    trained = [check for check in checks if check.work != "mtcnn"]
    assert all(check.train["device"] == "cuda" for check in trained)
    assert gpu.plan(gpu.Machine(cuda=True), "cuda:1")[0].train["device"] == "cuda:1"
    [one] = [check for check in checks if check.work == "torchrun"]
    assert one.processes == 1 and one.name == "torchrun, 1 process(es), NCCL"
    many = gpu.plan(gpu.Machine(cuda=True, nccl=True, gpus=4))
    assert [check.processes for check in many if check.work == "torchrun"] == [2]


def test_what_the_gpu_lacks_is_skipped_with_its_reason(gpu):
    checks = gpu.plan(gpu.Machine(cuda=True, bf16=False, nccl=False))
    skipped = {check.name: check.skip for check in checks if check.skip}
    assert skipped == {
        "train, amp bf16": "this GPU has no bfloat16",
        "torchrun, 1 process(es), NCCL": "torch was built without NCCL",
    }
    table = gpu.report(gpu.Machine(cuda=True, name="T4"), [(checks[0], None)])
    assert "T4" in table and "skipped: this GPU has no bfloat16" in table
    done = gpu.Outcome(gpu_s=1.0, cpu_s=4.0, agreement="accuracy 1.00 vs 1.00", ok=True)
    assert "| 4.0x | accuracy 1.00 vs 1.00 | ok |" in gpu.report(
        gpu.Machine(cuda=True), [(checks[1], done)]
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_the_script_says_there_is_no_cuda_and_exits_0():
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "no CUDA device" in done.stdout
