"""The public API: every name of ``vidfer.__all__`` resolves, is documented, and ``import vidfer``
stays cheap; a script without a ``__main__`` guard prepares and trains (its workers do not run
it)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import vidfer


@pytest.mark.parametrize("name", vidfer.__all__)
def test_every_public_name_resolves_and_is_documented(name: str) -> None:
    value = getattr(vidfer, name)
    if inspect.isfunction(value) or inspect.isclass(value):
        assert inspect.getdoc(value), f"vidfer.{name} has no docstring"
        assert value.__module__.startswith("vidfer.")
    assert name in dir(vidfer)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = vidfer.nope  # type: ignore[attr-defined]


def test_import_vidfer_does_not_import_torch() -> None:
    code = "import sys, vidfer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_decoding_worker_does_not_import_torch() -> None:
    # vidfer predict waits for its decoding worker's first piece: the worker imports the module
    # of its task, vidfer.data.stream (and through it the keyframe face detector), not torch.
    code = "import sys, vidfer.data.stream; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


UNGUARDED = """\
import vidfer

print("the script runs")
config = vidfer.load_config("run.yaml")
print(len(vidfer.load_dataset(config.data).items), "videos ready")
print(vidfer.train(config, "run").epochs, "epoch")
"""


@pytest.mark.slow
def test_a_script_without_a_main_guard_prepares_and_trains(
    square_dataset: Path, tmp_path: Path
) -> None:
    config = {
        "data": {"manifest": str(square_dataset), "prepare": {"size": 16}, "workers": 2},
        "sampler": {"clip_len": 8},
        "transforms": {"size": 16},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "train": {"epochs": 1, "batch_size": 4},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "unguarded.py").write_text(UNGUARDED)
    result = subprocess.run(
        [sys.executable, "unguarded.py"],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    # Once: the spawned decoding workers did not run the script again.
    assert result.stdout.splitlines() == ["the script runs", "8 videos ready", "1 epoch"]


@pytest.mark.parametrize(("given", "expected"), [(None, "64"), ("7", "7")])
def test_importing_vidfer_bounds_onednns_primitive_cache_unless_the_user_set_it(given, expected):
    # oneDNN's default (1024 primitives, one per layer and input shape) grew a preparation
    # worker by ~0.5 GiB on a long video (benchmarks/prepare_memory.py).
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if given is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = given
    code = "import os, vidfer; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected
