"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import write_square_dataset

# Two cores are shared by the suite: one intra-op thread per test process keeps runs predictable.
torch.set_num_threads(1)


@pytest.fixture
def square_dataset(tmp_path: Path) -> Path:
    """A fresh tiny dataset (8 videos, 2 classes) in a temporary folder; returns the manifest."""
    return write_square_dataset(tmp_path / "squares")
