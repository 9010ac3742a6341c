"""Checkpoints are data, not code: crafted pickles are refused everywhere, nothing unpickles."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

import vidfer
from reliability_helpers import write_run_config
from vidfer.cli import main
from vidfer.config import load_config
from vidfer.errors import CheckpointError
from vidfer.io.checkpoint import load_checkpoint


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
            own = bool(call.args) and ast.unparse(call.args[0]).startswith("pickle.dumps(")
            if name == "pickle.loads" and own:
                continue  # a round trip of an object of ours (no file involved)
            assert name not in ("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load"), (
                where
            )
            if name in ("np.load", "numpy.load"):
                flag = keywords.get("allow_pickle")
                assert flag is None or (isinstance(flag, ast.Constant) and not flag.value), where
    assert loads >= 4  # checkpoints, pretrained 3D weights, torchvision weights, MTCNN
