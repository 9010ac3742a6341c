"""``vidfer manifest`` then ``vidfer experiment`` end to end on the video-file benchmarks
(RAVDESS and CREMA-D with actor-disjoint folds, MAFW's clips with its official folds), each a
small tree in the dataset's exact layout with real videos (CREMA-D's are .flv, as shipped)."""

from __future__ import annotations

import json
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


@pytest.mark.slow
def test_mafw_official_folds_experiment(tmp_path):
    root = tmp_path / "mafw"
    clips = {f"0010{k}": ("anger", 1) for k in range(4)} | {
        f"0020{k}": ("fear", -1) for k in range(4)
    }
    for seed, (name, (_, direction)) in enumerate(clips.items()):
        video(root / "data" / "clips" / f"{name}.mp4", direction, seed)
    sets = root / "Train & Test Set" / "single" / "no_caption"
    folds = {
        1: (("00100", "00101", "00200", "00201"), ("00102", "00202")),
        2: (("00102", "00103", "00202", "00203"), ("00100", "00200")),
    }
    manifests = []
    for k, parts in folds.items():
        for split, names in zip(("train", "test"), parts, strict=True):
            write(
                sets / f"set_{k}" / f"{split}.txt",
                "".join(f"{n}.mp4 {clips[n][0]}\n" for n in names),
            )
        out = root / f"manifest_set{k}.csv"
        args = ["manifest", str(root), "--layout", "mafw", "--split-number", str(k)]
        assert main([*args, "--out", str(out)]) == 0
        manifests.append(str(out))
    protocol = {"name": "official", "manifests": manifests, "val_fraction": 0.5}
    record = experiment(tiny_config(tmp_path, Path(manifests[0]), protocol), tmp_path / "exp")
    assert [fold["test"] for fold in record["folds"]] == [2, 2]
