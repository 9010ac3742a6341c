"""Checkpoints survive SIGKILL at any point of a save and a full disk, and are data, not code."""

from __future__ import annotations

import ast
import io
import json
import multiprocessing
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

import vidfer
from reliability_helpers import run_vidfer, write_run_config
from vidfer.cli import main
from vidfer.config import load_config
from vidfer.data.prepared import load_dataset
from vidfer.errors import CheckpointError, StorageError
from vidfer.models import model_from_config
from vidfer.training.checkpoint import load_checkpoint, save_checkpoint

WEIGHTS = 262_144  # 1 MiB of float32 per checkpoint


def versioned(version: int) -> dict:
    return {"version": version, "weights": torch.full((WEIGHTS,), float(version))}


def save_forever(path: Path, first: int) -> None:
    """Save checkpoints of increasing versions until killed."""
    version = first
    while True:
        save_checkpoint(path, versioned(version), {"version": version})
        version += 1


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_sigkill_at_random_points_of_a_save_keeps_a_whole_checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, versioned(0), {"version": 0})
    fork = multiprocessing.get_context("fork")
    delays = random.Random(12)
    versions, orphans = set(), 0
    for trial in range(1, 41):
        saver = fork.Process(target=save_forever, args=(path, trial * 1000))
        saver.start()
        time.sleep(delays.uniform(0.005, 0.06))
        os.kill(saver.pid, signal.SIGKILL)
        saver.join()
        assert saver.exitcode == -signal.SIGKILL
        state = load_checkpoint(path)  # never damaged, whatever the kill interrupted
        version = int(state["version"])
        assert torch.equal(state["weights"], torch.full((WEIGHTS,), float(version)))
        json.loads(path.with_suffix(".json").read_text())  # the sidecar parses too
        versions.add(version)
        orphans += bool(temporaries(path.parent))
    # The kills landed at many points: first saves, later saves, inside the writes.
    assert len(versions) > 20 and orphans > 0
    # The next save deletes what the killed saves left.
    save_checkpoint(path, versioned(1), {"version": 1})
    assert temporaries(path.parent) == []


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[callable]:
    """Mount tmpfs file systems of a given size (a real full disk); unmounted at the end."""
    mounts = []

    def mount(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounts)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temporary(tiny_disk):
    folder = tiny_disk(WEIGHTS * 4 * 3 // 2)  # room for one checkpoint and half of another
    path = folder / "checkpoints" / "last.pt"
    save_checkpoint(path, versioned(1), {"version": 1})
    with pytest.raises(StorageError, match=r"last\.pt: cannot write it, no space left on device"):
        save_checkpoint(path, versioned(2), {"version": 2})
    assert int(load_checkpoint(path)["version"]) == 1
    assert json.loads(path.with_suffix(".json").read_text()) == {"version": 1}
    assert temporaries(path.parent) == []


def checkpoint_bytes(config_path: Path) -> int:
    """Size of a mid-training checkpoint of the run: the weights and AdamW's two moments."""
    config = load_config(config_path)
    model = model_from_config(config.model, num_classes=2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 3, 4, 16, 16)).sum().backward()
    optimizer.step()
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    return buffer.tell()


def test_full_disk_during_training_stops_with_a_clear_message(square_dataset, tmp_path, tiny_disk):
    config = write_run_config(tmp_path, square_dataset)
    load_dataset(load_config(config).data)
    # The run folder holds one checkpoint; the second save runs out of space.
    run = tiny_disk(checkpoint_bytes(config) * 3 // 2) / "run"
    result = run_vidfer("train", str(config), "--out", str(run))
    assert result.returncode == 2, result.stderr
    error = " ".join(result.stderr.split())
    assert f"{run}/checkpoints/last.pt: cannot write it, no space left on device" in error, error
    assert "Traceback" not in error
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1
    assert temporaries(run / "checkpoints") == [] and temporaries(run) == []


class Exploit:
    """Unpickling this object would create a file."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_crafted_checkpoints_are_refused_by_every_command(square_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    config = load_config(write_run_config(tmp_path, square_dataset))
    (run / "config.yaml").write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    (run / "classes.json").write_text('["left", "right"]')
    target = tmp_path / "pwned.txt"
    for name in ("last", "best"):
        torch.save({"model": Exploit(target)}, run / "checkpoints" / f"{name}.pt")
    video = square_dataset.parent / "videos" / "left" / "0.mp4"
    for argv in (
        ["train", "--resume", str(run)],
        ["evaluate", str(run), "--split", "test"],
        ["predict", str(video), "--run", str(run), "--out", str(tmp_path / "p")],
    ):
        assert main(argv) == 2, argv
        error = " ".join(capsys.readouterr().err.split())
        assert "refused to load: the file holds more than tensors" in error, (argv, error)
    assert not target.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(run / "checkpoints" / "last.pt")
    assert not target.exists()


def _calls(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def test_the_package_never_unpickles_untrusted_files():
    """Every ``torch.load`` is ``weights_only=True``; no pickle, unsafe YAML or object arrays."""
    package = Path(vidfer.__file__).parent
    loads = 0
    for source in sorted(package.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for name, call in _calls(tree):
            keywords = {k.arg: k.value for k in call.keywords}
            where = f"{source.relative_to(package)}:{call.lineno}"
            if name == "torch.load":
                loads += 1
                flag = keywords.get("weights_only")
                assert isinstance(flag, ast.Constant) and flag.value is True, where
            assert name not in ("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load"), (
                where
            )
            if name in ("np.load", "numpy.load"):
                flag = keywords.get("allow_pickle")
                assert flag is None or (isinstance(flag, ast.Constant) and not flag.value), where
    assert loads >= 4  # checkpoints, pretrained 3D weights, torchvision weights, MTCNN
