"""Load: 2,000 tiny videos prepared, SIGKILLed half-way and resumed; descriptors and memory flat.

The videos are hard links to three real 8x8, 3-frame mp4 files: each link is a distinct source
(the store keys a video by its resolved path, size and modification time).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from reliability_helpers import store_records, vidfer_argv, vidfer_env
from vidfer.config import PrepareConfig
from vidfer.data.prepare import open_store
from vidfer.io.writer import write_video

COUNT = 2000


def tiny_dataset(root: Path) -> Path:
    """``root/manifest.csv`` listing COUNT videos in two classes."""
    (root / "v").mkdir(parents=True)
    rng = np.random.default_rng(0)
    bases = []
    for i in range(3):
        bases.append(root / f"base{i}.mp4")
        write_video(bases[-1], rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8), 10.0)
    lines = ["path,label"]
    for k in range(COUNT):
        os.link(bases[k % 3], root / "v" / f"{k:04d}.mp4")
        lines.append(f"v/{k:04d}.mp4,{'ab'[k % 2]}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields: state, ppid, ...
            out.append(int(stat.parent.name))
    return out


def _usage(pid: int) -> tuple[int, int] | None:
    """(open file descriptors, resident memory in kB) of a process, None once it is gone."""
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = re.search(r"VmRSS:\s+(\d+) kB", status)
    return (fds, int(rss.group(1))) if rss else None


@dataclass
class Monitor:
    """Samples a ``vidfer prepare`` process and its workers every 200 ms while it runs."""

    process: subprocess.Popen[str]
    store: Path
    samples: list[tuple[int, int, dict[int, tuple[int, int]]]] = field(default_factory=list)

    def done(self) -> int:
        """Store entries written so far (records; ``prepare.json`` excluded)."""
        return len(store_records(self.store)) if self.store.exists() else 0

    def run(self, kill_at: int | None = None) -> None:
        while self.process.poll() is None:
            done = self.done()
            if kill_at is not None and done >= kill_at:
                os.kill(self.process.pid, signal.SIGKILL)
                break
            usage = {pid: _usage(pid) for pid in [self.process.pid, *_children(self.process.pid)]}
            if usage[self.process.pid] is not None:
                self.samples.append(
                    (done, self.process.pid, {p: u for p, u in usage.items() if u is not None})
                )
            time.sleep(0.2)

    def spread(self, low: int) -> dict[str, int]:
        """Largest change of fds and growth of RSS (kB) of each process while the entries
        ``low`` to the last were being prepared."""
        per_process: dict[int, list[tuple[int, int]]] = {}
        for done, _, usage in self.samples:
            if low <= done < COUNT:
                for pid, values in usage.items():
                    per_process.setdefault(pid, []).append(values)
        worst = {"fds": 0, "rss_kb": 0}
        for values in per_process.values():
            fds, rss = zip(*values, strict=True)
            worst["fds"] = max(worst["fds"], max(fds) - min(fds))
            worst["rss_kb"] = max(worst["rss_kb"], max(rss) - rss[0])
        return worst


@pytest.mark.slow
def test_preparing_2000_videos_resumes_after_sigkill_with_flat_descriptors_and_memory(tmp_path):
    manifest = tiny_dataset(tmp_path / "data")
    store = open_store(manifest.parent / ".vidfer_store", PrepareConfig(size=8))
    argv = vidfer_argv("prepare", str(manifest), "--size", "8", "--workers", "2")

    first = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=vidfer_env()
    )
    killed = Monitor(first, store.folder)
    killed.run(kill_at=COUNT // 2)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    # Each entry is absent or complete: a record is only ever written after its frames.
    records = store_records(store.folder)
    assert COUNT // 2 <= len(records) < COUNT
    for record in records:
        entry = store.load_record(record.stem)
        assert entry is not None and entry.ok
        assert store.frames(record.stem).shape == (3, 8, 8, 3)

    second = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=vidfer_env()
    )
    resumed = Monitor(second, store.folder)
    resumed.run()
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    # Only the videos the killed run did not finish were decoded again.
    decoded = int(re.search(r"\((\d+) decoded now, 0 rejected", out).group(1))
    assert decoded == COUNT - len(records)
    assert sorted(p.stem for p in store.folder.glob("*.npy")) == [
        p.stem for p in store_records(store.folder)
    ]
    assert not [p for p in store.folder.iterdir() if ".tmp" in p.name]  # orphans deleted
    # Flat: from a fifth of the work to the end, no process gains descriptors or memory.
    for monitor, low in ((killed, COUNT // 10), (resumed, len(records) + decoded // 5)):
        spread = monitor.spread(low)
        print(f"prepare from {low} to the end: {spread}")  # the measured numbers, with -s
        assert spread["fds"] <= 2, spread
        assert spread["rss_kb"] <= 16 * 1024, spread
