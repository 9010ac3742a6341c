"""``vidfer manifest`` then ``vidfer experiment`` end to end on the video-file benchmarks
(RAVDESS and CREMA-D with actor-disjoint folds; MAFW's clips and DFEW's original videos with
official folds, one manifest each), each a small tree in the dataset's exact layout with real
videos (CREMA-D's are .flv, as shipped)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fer_trees import cremad_tree, ravdess_tree, video, write
from vidfer.cli import main
from vidfer.data.manifest import read_manifest


def tiny_config(folder: Path, manifest: Path, protocol: dict[str, object]) -> Path:
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {"name": "uniform", "clip_len": 8},
        "transforms": {"size": 28, "flip": 0.0},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "train": {"epochs": 1, "batch_size": 4},
        "protocol": protocol,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def experiment(config: Path, out: Path) -> dict:
    assert main(["experiment", str(config), "--out", str(out)]) == 0
    record = json.loads((out / "experiment.json").read_text())
    # WAR is the accuracy, UAR the mean of the per-class recalls.
    for name in ("accuracy", "mean_class_accuracy"):
        summary = record["summary"][name]
        assert summary["n"] == len(record["folds"]) and 0.0 <= summary["mean"] <= 1.0
    return record


def actor_disjoint(record: dict, out: Path) -> list[str]:
    tested = []
    for fold in record["folds"]:
        manifest = read_manifest(out / fold["run"] / "manifest.csv")
        people = {part: {r.subject for r in manifest.split(part)} for part in ("train", "test")}
        assert not people["train"] & people["test"]
        tested += fold["test_subjects"]
    return sorted(tested)


@pytest.mark.slow
def test_ravdess_manifest_then_actor_disjoint_experiment(tmp_path):
    root = ravdess_tree(tmp_path / "ravdess", actors=(1, 2, 3, 4), real=True)
    assert main(["manifest", str(root), "--layout", "ravdess"]) == 0
    manifest = read_manifest(root / "manifest.csv")
    assert len(manifest.rows) == 16 and manifest.classes == ("happy", "sad")
    config = tiny_config(tmp_path, root / "manifest.csv", {"name": "subject_kfold", "folds": 2})
    record = experiment(config, tmp_path / "exp")
    assert actor_disjoint(record, tmp_path / "exp") == ["01", "02", "03", "04"]


@pytest.mark.slow
def test_cremad_flv_manifest_then_actor_disjoint_experiment(tmp_path):
    root = cremad_tree(tmp_path / "crema", actors=(1001, 1002, 1003, 1004), real=True)
    assert main(["manifest", str(root), "--layout", "cremad"]) == 0
    assert len(read_manifest(root / "manifest.csv").rows) == 16
    config = tiny_config(tmp_path, root / "manifest.csv", {"name": "subject_kfold", "folds": 2})
    record = experiment(config, tmp_path / "exp")
    assert actor_disjoint(record, tmp_path / "exp") == ["1001", "1002", "1003", "1004"]


FOLDS = {1: ((0, 1, 4, 5), (2, 6)), 2: ((2, 3, 6, 7), (0, 4))}
"""Two official folds over 8 clips (0-3 of one class, 4-7 of the other): (train, test) clips."""


def official_experiment(
    tmp_path: Path,
    root: Path,
    layout: list[str],
    write_list: Callable[[int, str, tuple[int, ...]], None],
) -> dict:
    """One manifest per fold (``vidfer manifest --split-number k``), then the official protocol."""
    manifests = []
    for k, parts in FOLDS.items():
        for split, clips in zip(("train", "test"), parts, strict=True):
            write_list(k, split, clips)
        out = root / f"manifest_set{k}.csv"
        args = ["manifest", str(root), *layout, "--split-number", str(k), "--out", str(out)]
        assert main(args) == 0
        manifests.append(str(out))
    protocol = {"name": "official", "manifests": manifests, "val_fraction": 0.5}
    record = experiment(tiny_config(tmp_path, Path(manifests[0]), protocol), tmp_path / "exp")
    assert [(fold["train"] + fold["val"], fold["test"]) for fold in record["folds"]] == [(4, 2)] * 2
    return record


@pytest.mark.slow
def test_mafw_official_folds_experiment(tmp_path):
    root = tmp_path / "mafw"
    labels = ["anger"] * 4 + ["fear"] * 4
    for clip in range(8):
        video(root / "data" / "clips" / f"{clip + 1:05d}.mp4", 1 if clip < 4 else -1, clip)
    sets = root / "Train & Test Set" / "single" / "no_caption"

    def write_list(k: int, split: str, clips: tuple[int, ...]) -> None:
        lines = "".join(f"{clip + 1:05d}.mp4 {labels[clip]}\n" for clip in clips)
        write(sets / f"set_{k}" / f"{split}.txt", lines)

    official_experiment(tmp_path, root, ["--layout", "mafw"], write_list)


@pytest.mark.slow
def test_dfew_original_videos_official_folds_experiment(tmp_path):
    root = tmp_path / "dfew"
    codes = [1] * 4 + [2] * 4  # happy, sad
    for clip in range(8):
        video(root / "Clip" / "original" / f"{clip + 1:05d}.mp4", 1 if clip < 4 else -1, clip)

    def write_list(k: int, split: str, clips: tuple[int, ...]) -> None:
        lines = "".join(f"{clip + 1},{codes[clip]}\n" for clip in clips)
        table = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{k}.csv"
        write(table, "video_name,label\n" + lines)

    official_experiment(tmp_path, root, ["--layout", "dfew", "--variant", "original"], write_list)
