"""Shared fixtures, and how the suite is split between pytest-xdist workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import write_square_dataset

# Two cores are shared by the suite: one intra-op thread per test process keeps runs predictable.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n 2 --dist loadgroup`` (``make test``): the tests of a module that uses a
    module- or session-scoped fixture of its own run on one worker, so that the fixture (often a
    trained run) is built once; every other test goes to whichever worker is free."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        module = item.nodeid.split("::")[0]
        info = getattr(item, "_fixtureinfo", None)
        definitions = info.name2fixturedefs.values() if info is not None else ()
        if any(
            definition.scope in ("module", "session") and definition.baseid == module
            for chain in definitions
            for definition in chain
        ):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture
def square_dataset(tmp_path: Path) -> Path:
    """A fresh tiny dataset (8 videos, 2 classes) in a temporary folder; returns the manifest."""
    return write_square_dataset(tmp_path / "squares")
