"""A leak-proof fusion search: runs record what they learned from (``videos.json``), and
``vidfer fuse`` refuses to learn on a split a run trained or early-stopped on, on ``test`` unless
asked, and runs of other manifests or class orders (issue 24, item 3)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from vidfer.cli import main
from vidfer.config import parse_config
from vidfer.errors import ConfigError
from vidfer.fusion.fuse import ON_TEST, FusionSpec, fuse_runs
from vidfer.fusion.random_search import SearchSettings
from vidfer.io.run_folder import RunDir
from vidfer.pipelines import train

from helpers import vidfer_forked

QUICK = SearchSettings(samples=200, block=0)


def _clip_config(manifest: Path, seed: int) -> dict[str, object]:
    return {
        "seed": seed,
        "data": {"manifest": str(manifest), "prepare": {"size": 16}, "workers": 1},
        "sampler": {"name": "uniform", "clip_len": 4},
        "transforms": {"size": 16},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "train": {"epochs": 1, "batch_size": 2},
    }


@pytest.fixture(scope="module")
def runs(square_source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny 3D runs on the square dataset: ``a`` and ``b`` train on train and stop on val;
    ``swapped`` is trained on a copy of the manifest with train and val exchanged (the swap
    protocol's second fold)."""
    root = tmp_path_factory.mktemp("provenance")
    data = Path(shutil.copytree(square_source, root / "squares"))
    manifest = data / "manifest.csv"
    swapped = data / "swapped.csv"
    text = manifest.read_text()
    swapped.write_text(
        text.replace(",train,", ",TMP,").replace(",val,", ",train,").replace(",TMP,", ",val,")
    )
    folders = {"a": (manifest, 0), "b": (manifest, 1), "swapped": (swapped, 0)}
    for name, (source, seed) in folders.items():
        train(parse_config(_clip_config(source, seed)), root / name)
    return {name: root / name for name in folders}


def test_every_run_records_the_videos_it_trained_and_stopped_on(runs: dict[str, Path]) -> None:
    record = RunDir(runs["a"]).videos()
    assert record is not None
    assert len(record.train) == 4 and len(record.stopping) == 2  # train,train,val,test x 2
    assert not set(record.train) & set(record.stopping)
    assert record.classes == ["left", "right"] and len(record.manifest_sha256) == 64
    swapped = RunDir(runs["swapped"]).videos()
    assert swapped is not None
    assert sorted(swapped.train) == sorted(record.stopping)  # it trained on a's val videos


def _fuse(*args: str) -> subprocess.CompletedProcess[str]:
    return vidfer_forked("fuse", *args, "--samples", "200", "--block", "0")


@pytest.mark.slow
def test_fuse_refuses_to_learn_on_videos_a_run_learned_from(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = str(runs["a"]), str(runs["b"])
    # Both runs early-stopped on val: the default search split is refused, in one line.
    refused = _fuse(a, b, "--out", str(tmp_path / "val"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    error = refused.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert a in error and "early-stopped on 2 of the 2 'val' videos" in error
    # test: refused unless asked; asked, the summary and the report say so first.
    with pytest.raises(ConfigError, match="--search-on-test if you mean it"):
        FusionSpec(runs=[runs["a"], runs["b"]], search_split="test").check()
    # (In this process: the refusal above ran the command as its own process.)
    asked = ["--out", str(tmp_path / "t"), "--search-split", "test", "--search-on-test"]
    assert main(["fuse", a, b, *asked, "--samples", "200", "--block", "0"]) == 0
    out = capsys.readouterr().out
    assert " ".join(out.split()).startswith(ON_TEST)  # (the console wraps lines)
    assert (tmp_path / "t" / "comparison.md").read_text().splitlines()[0] == ON_TEST
    record = json.loads((tmp_path / "t" / "fusion.json").read_text())
    assert record["warnings"] == [ON_TEST] and record["unchecked_runs"] == []
    # Kahou et al.'s protocol (stop and search on val), asked for: it runs, and says so first.
    spec = FusionSpec(runs=[runs["a"], runs["b"]], search=QUICK, search_on_stopping=True)
    fuse_runs(spec, tmp_path / "kahou")
    first = (tmp_path / "kahou" / "comparison.md").read_text().splitlines()[0]
    assert first.startswith("WARNING: the fusion was learned on videos that") and a in first


def test_fuse_refuses_a_run_trained_on_the_search_split(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    spec = FusionSpec(runs=[runs["swapped"], runs["a"]], search=QUICK, search_on_stopping=True)
    # The fusion would learn on both runs' val videos (6): the swapped run trained on a's 2 val
    # videos and stopped on its 4 train videos (and a trained on those 4).
    with pytest.raises(
        ConfigError, match=r"swapped trained on 2 and early-stopped on 4 of the 6 'val'"
    ):
        fuse_runs(spec, tmp_path / "out")
    # Even a method that learns nothing refuses runs of another manifest.
    with pytest.raises(ConfigError, match=r"swapped was trained on the manifest .*swapped\.csv"):
        fuse_runs(FusionSpec(runs=[runs["a"], runs["swapped"]], method="mean"), tmp_path / "m")
    assert not (tmp_path / "out").exists() and not (tmp_path / "m").exists()


def test_fuse_refuses_another_class_order(runs: dict[str, Path], tmp_path: Path) -> None:
    other = Path(shutil.copytree(runs["b"], tmp_path / "reordered"))
    (other / "classes.json").write_text('["right", "left"]')
    with pytest.raises(ConfigError, match=r"reordered has the classes \['right', 'left'\]"):
        fuse_runs(FusionSpec(runs=[runs["a"], other], method="mean"), tmp_path / "out")


def test_a_run_without_a_videos_record_fuses_with_one_warning(
    runs: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = Path(shutil.copytree(runs["b"], tmp_path / "old"))
    (old / "videos.json").unlink()  # as written before vidfer recorded it
    spec = FusionSpec(runs=[runs["a"], old], search_split="test", search_on_test=True, search=QUICK)
    with caplog.at_level(logging.WARNING, logger="vidfer.fusion.provenance"):
        fuse_runs(spec, tmp_path / "out")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(old) in warnings[0] and "could not check" in warnings[0]
    record = json.loads((tmp_path / "out" / "fusion.json").read_text())
    assert record["unchecked_runs"] == [str(old)]
