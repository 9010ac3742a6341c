"""Checkpoints are data, not code: crafted pickles are refused everywhere, nothing unpickles."""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

import vidfer
from reliability_helpers import write_run_config
from vidfer.cli import main
from vidfer.config import load_config
from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.checkpoint import load_checkpoint, read_state_dict


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
    loads = []
    for source in sorted(package.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for name, call in _calls(tree):
            keywords = {k.arg: k.value for k in call.keywords}
            where = f"{source.relative_to(package)}:{call.lineno}"
            if name == "torch.load":
                loads.append(where)
                flag = keywords.get("weights_only")
                assert isinstance(flag, ast.Constant) and flag.value is True, where
            assert name not in ("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load"), (
                where
            )
            if name in ("np.load", "numpy.load"):
                flag = keywords.get("allow_pickle")
                assert flag is None or (isinstance(flag, ast.Constant) and not flag.value), where
    # Checkpoints and every weight file (pretrained 3D weights, torchvision weights, MTCNN) are
    # read in one place.
    assert loads and all(where.startswith("io/checkpoint.py:") for where in loads), loads

    # A sandbox's parent reads its workers' answers with vidfer.io.wire only: the one pickling
    # ``recv()`` is the worker's, reading its (trusted) parent's requests.
    def receivers(module: str) -> set[str]:
        tree = ast.parse((package / "io" / module).read_text(encoding="utf-8"))
        return {
            function.name
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef)
            for name, _ in _calls(function)
            if name.endswith(".recv")
        }

    assert receivers("sandbox.py") == set()
    assert receivers("sandbox_worker.py") == {"_receive"}


def test_damaged_weight_files_are_one_line_errors_naming_the_file(tmp_path):
    """Truncated or overwritten bytes raise the caller's error type, never a decoder's."""
    whole = tmp_path / "whole.pt"
    torch.save({"weight": torch.arange(64.0)}, whole)
    data = whole.read_bytes()
    rng = random.Random(0)
    damaged = tmp_path / "damaged.pt"
    for trial in range(40):
        if trial % 4 == 0:
            damaged.write_bytes(data[: rng.randrange(len(data))])
        else:
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 20)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            damaged.write_bytes(bytes(flipped))
        for read, error in (
            (read_state_dict, CheckpointError),
            (lambda path: read_state_dict(path, error=ConfigError), ConfigError),
            (load_checkpoint, CheckpointError),
        ):
            try:
                read(damaged)
            except error as raised:
                assert str(damaged) in str(raised) and "\n" not in str(raised), trial
