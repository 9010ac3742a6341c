"""Crashes mid-write and full disks: checkpoints and prepared-store entries stay whole.

The kills are real SIGKILLs of real processes (forked writers, a ``vidfer train`` run) at random
points; the full disk is a real tmpfs of a few hundred kilobytes (mounting needs root).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from reliability_helpers import run_vidfer, store_records, write_run_config
from vidfer.config import DataConfig, load_config
from vidfer.data.prepared import load_dataset
from vidfer.data.store import PreparedStore, SourceIdentity, StoreRecord
from vidfer.errors import StorageError
from vidfer.io.checkpoint import load_checkpoint, save_checkpoint
from vidfer.models import model_from_config

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
    """The temporary files left in ``folder`` (none if a kill came before it was made)."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name) if folder.exists() else []


def kill_at_random_points(
    target: Callable[[Path, int], None], path: Path, trials: int
) -> Iterator[int]:
    """Run ``target(path, first)`` in forked processes, each SIGKILLed after a random 5-60 ms;
    yields after each kill."""
    fork = multiprocessing.get_context("fork")
    delays = random.Random(12)
    for trial in range(1, trials + 1):
        writer = fork.Process(target=target, args=(path, trial * 1000))
        writer.start()
        time.sleep(delays.uniform(0.005, 0.06))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        assert writer.exitcode == -signal.SIGKILL
        yield trial


def test_sigkill_at_random_points_of_a_save_keeps_a_whole_checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, versioned(0), {"version": 0})
    versions, orphans = set(), 0
    for _ in kill_at_random_points(save_forever, path, 40):
        state = load_checkpoint(path)  # never damaged, whatever the kill interrupted
        version = int(state["version"])
        assert torch.equal(state["weights"], torch.full((WEIGHTS,), float(version)))
        json.loads(path.with_suffix(".json").read_text())  # the sidecar parses too
        versions.add(version)
        orphans += bool(temporaries(path.parent))
    # The kills landed at many points: first saves, later saves, inside the writes (how many
    # saves fit before a kill depends on the machine's load: the bounds are loose on purpose).
    assert len(versions) > 5 and orphans > 0
    # The next save deletes what the killed saves left.
    save_checkpoint(path, versioned(1), {"version": 1})
    assert temporaries(path.parent) == []


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[Callable[[int], Path]]:
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


FRAMES = (40, 32, 32, 3)  # 120 kB per entry


def entry(number: int) -> tuple[StoreRecord, np.ndarray]:
    """Store entry ``number``: frames filled with a value derived from it."""
    identity = SourceIdentity(path=f"/videos/{number}.mp4", size=number, mtime_ns=number)
    record = StoreRecord(
        source=identity,
        status="ok",
        fps=10.0,
        source_fps=10.0,
        frame_indices=list(range(FRAMES[0])),
        shape=list(FRAMES),
    )
    return record, np.full(FRAMES, number % 251, np.uint8)


def write_entries_forever(root: Path, first: int) -> None:
    """Write store entries ``first``, ``first + 1``, ... until killed."""
    store = PreparedStore(root, "prep")
    number = first
    while True:
        store.write(*entry(number))
        number += 1


def test_sigkill_at_random_points_of_store_writes_leaves_entries_absent_or_complete(tmp_path):
    store = PreparedStore(tmp_path, "prep")
    complete, orphans = 0, 0
    for _ in kill_at_random_points(write_entries_forever, tmp_path, 30):
        for record_path in store_records(store.folder):
            record = store.load_record(record_path.stem)
            assert record is not None and record.ok  # a record exists only for a whole entry
            number = record.source.size
            assert np.array_equal(store.frames(record_path.stem), entry(number)[1])
        complete = len(store_records(store.folder))
        orphans += bool(temporaries(store.folder))
    # Many entries, kills inside writes (loose bound: how many land depends on the load).
    assert complete > 5 and orphans > 0
    # Arrays whose record was never written are not entries: the next run prepares them.
    arrays = {p.stem for p in store.folder.glob("*.npy") if not p.name.startswith(".")}
    unrecorded = arrays - {p.stem for p in store_records(store.folder)}
    assert all(store.load_record(key) is None for key in unrecorded)
    # The next run, holding the store's lock, deletes the temporary files of killed writes.
    with store.lock():
        assert temporaries(store.folder) == []


def test_full_disk_during_preparation_stops_with_a_clear_message(square_dataset, tiny_disk):
    store = tiny_disk(64 * 1024)  # room for a few of the 8 entries
    config = DataConfig.model_validate(
        {"manifest": square_dataset, "store": store, "prepare": {"size": 16}}
    )
    with pytest.raises(StorageError, match=r"cannot write it, no space left on device"):
        load_dataset(config)
    folder = next(path for path in store.iterdir() if path.is_dir())
    prepared = PreparedStore(store, folder.name)
    records = store_records(folder)
    assert 0 < len(records) < 8
    for record in records:
        assert prepared.load_record(record.stem) is not None
        assert prepared.frames(record.stem).shape == (20, 16, 16, 3)
    assert temporaries(folder) == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_take_the_umask_s_mode_not_mkstemp_s(tmp_path, umask):
    """A run's files are readable by the group / others as the umask allows (shared machines)."""
    script = (
        "import os, sys, numpy as np\n"
        f"os.umask({umask})\n"
        "from vidfer.io.atomic import atomic_path, atomic_write_text\n"
        "atomic_write_text(sys.argv[1] + '/a.txt', 'x')\n"
        "with atomic_path(sys.argv[1] + '/b.npy') as tmp:\n"
        "    np.save(tmp, np.zeros(3))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    for name in ("a.txt", "b.npy"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
