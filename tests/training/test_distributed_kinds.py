"""Several processes for the kinds of run that are not distributed (issue 24, item 2): the
frame-feature, sparse auto-encoder and activity pipelines, ``train-frames`` and
``video-attention`` are refused in one line, by ``--nproc`` and under torchrun, in every process
and before any of them writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import vidfer
from vidfer.cli import main

# The processes import this checkout's vidfer, with one thread each.
SOURCE = str(Path(vidfer.__file__).resolve().parents[1])
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SOURCE}

KINDS = {
    "frames": {"extractors": [{"cnn": "mini_xception", "layer": "logits"}],
               "classifier": {"name": "average"}},
    "sparse_ae": {"patch": 8, "depth": 3, "codes": 16, "epochs": 1},
    "activity": {"patch": 16, "depth": 4, "hidden": 8, "components": 8, "words": 4},
}  # fmt: skip


def _config(folder: Path, manifest: Path, kind: str) -> Path:
    raw = {"seed": 0, "data": {"manifest": str(manifest), "workers": 1}, kind: KINDS[kind]}
    path = folder / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_nproc_refuses_the_kinds_that_train_in_one_process(
    kind: str, square_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, square_dataset, kind)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--nproc", "2"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert f"kind {kind!r}" in error and "without --nproc or torchrun" in error
    assert not (tmp_path / "run").exists()


# Each torchrun process runs both commands through the CLI's entry point, one after the other:
# one start of torchrun and its processes for the two.
BOTH = """
import sys
from vidfer.cli import main
commands = [sys.argv[1:6], ["train-frames", "x", "--model", "mini_xception", "--out", "f"]]
sys.exit(max(main(args) for args in commands))
"""


@pytest.mark.slow
def test_every_torchrun_process_refuses_a_frame_pipeline_before_writing(
    square_dataset: Path, tmp_path: Path
) -> None:
    """Both ``vidfer train`` of a frame pipeline and the single-process ``train-frames``."""
    config = _config(tmp_path, square_dataset, "frames")
    script = tmp_path / "both.py"
    script.write_text(BOTH)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    result = subprocess.run(
        [*command, "--nproc-per-node=2", str(script), "train", str(config), "--out", "run"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=ENV,
    )
    assert result.returncode != 0  # (torchrun stops the other process once one has failed)
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidfer: error")]
    train = [e for e in errors if "kind 'frames': a frame-feature pipeline run" in e]
    frames = [e for e in errors if "train-frames runs in one process" in e]
    assert train and frames and len(train) + len(frames) == len(errors), errors
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "f").exists()
