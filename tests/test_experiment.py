"""``vidfer experiment`` end to end: a 5-fold subject-independent protocol on synthetic actions
(5 actors x 4 classes), resumed without re-running anything, aggregated as mean ± s.e."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from vidfer.cli import main
from vidfer.config import ProtocolConfig
from vidfer.data.synth import make_actions
from vidfer.evaluation.metrics import HEADLINE_METRICS, SUMMARY_METRICS
from vidfer.experiment import run_experiment


@pytest.fixture(scope="module")
def actions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 actors, each performing the 4 actions once: 20 videos with a subject column."""
    return make_actions(tmp_path_factory.mktemp("actions"), videos_per_class=5, size=32)


def write_config(folder: Path, manifest: Path, **extra) -> Path:
    config = {
        "seed": 1,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {"name": "uniform", "clip_len": 8},
        "transforms": {"size": 28, "flip": 0.0},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "train": {"epochs": 1, "batch_size": 4},
        **extra,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fold_rows(folder: Path) -> dict[str, list[dict[str, str]]]:
    with (folder / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {split: [r for r in rows if r["split"] == split] for split in ("train", "val", "test")}


def stamps(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_subject_kfold_experiment_resumes_and_aggregates(actions, tmp_path, capsys):
    config = write_config(tmp_path, actions)
    out = tmp_path / "exp"
    args = ["experiment", str(config), "--protocol", "subject_kfold", "--folds", "5"]
    assert main([*args, "--out", str(out)]) == 0

    record = json.loads((out / "experiment.json").read_text())
    assert record["config"] == str(config)
    assert record["protocol"] == {"name": "subject_kfold", "folds": 5, "repeats": 1, "seed": 0}
    assert record["metric_names"] == list(HEADLINE_METRICS)
    folds = record["folds"]
    assert [fold["name"] for fold in folds] == [f"fold{k}" for k in range(5)]
    tested = []
    for fold in folds:
        folder = out / fold["run"]
        rows = fold_rows(folder)
        people = {split: {r["subject"] for r in part} for split, part in rows.items()}
        # Never one subject in two of train, val and test.
        assert not people["train"] & people["test"]
        assert not people["val"] & people["test"]
        assert not people["train"] & people["val"]
        assert fold["test_subjects"] == sorted(people["test"]) and len(people["test"]) == 1
        assert (fold["train"], fold["val"], fold["test"]) == (12, 4, 4)
        tested += people["test"]
        # An ordinary run folder, scored on the fold's test videos.
        for part in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "fold.json"):
            assert (folder / part).exists(), part
        evaluation = json.loads((folder / "eval_test/metrics.json").read_text())
        assert evaluation["count"] == 4
        assert fold["metrics"] == {name: evaluation[name] for name in SUMMARY_METRICS}
        assert fold["per_class_recall"] == evaluation["per_class_accuracy"]
        assert fold["metrics"]["uar"] == evaluation["mean_class_accuracy"]
        assert fold["metrics"]["roc_auc"] is not None and fold["metrics"]["eer_accuracy"] is None
    assert sorted(tested) == ["a01", "a02", "a03", "a04", "a05"]
    # Mean ± standard error over the folds.
    accuracies = np.array([fold["metrics"]["accuracy"] for fold in folds])
    summary = record["summary"]["accuracy"]
    assert summary["n"] == 5
    assert summary["mean"] == pytest.approx(accuracies.mean())
    assert summary["sem"] == pytest.approx(accuracies.std(ddof=1) / np.sqrt(5))
    assert "eer_accuracy" not in record["summary"]  # four classes: no equal-error rate
    # UAR and WAR (the mean class accuracy and accuracy), each class's recall, over the folds.
    assert record["summary"]["war"] == summary
    uars = [fold["metrics"]["mean_class_accuracy"] for fold in folds]
    assert record["summary"]["uar"]["mean"] == pytest.approx(np.mean(uars))
    for label, value in record["per_class_recall"].items():
        recalls = [
            f["per_class_recall"][label] for f in folds if f["per_class_recall"][label] is not None
        ]
        assert value == {
            "mean": pytest.approx(np.mean(recalls)),
            "sem": pytest.approx(stats.sem(recalls)),
            "n": len(recalls),
        }
    assert len(record["per_class_recall"]) == 4
    # Pooled: the 20 test videos of the five folds scored together.
    correct = []
    for fold in folds:
        with (out / fold["run"] / "eval_test/predictions.csv").open(newline="") as handle:
            correct += [p["label"] == p["prediction"] for p in csv.DictReader(handle)]
    assert len(correct) == 20
    assert record["pooled"]["accuracy"] == {
        "mean": pytest.approx(np.mean(correct)),
        "sem": 0.0,
        "n": 1,
    }
    # One prepared store for all folds: the dataset's own, holding each video once.
    records = list((actions.parent / ".vidfer_store").glob("*/*.json"))
    assert len([r for r in records if r.name != "prepare.json"]) == 20
    assert not list(out.rglob(".vidfer_store"))

    # A second invocation (a real process) re-runs nothing.
    before = stamps(out / "folds")
    again = subprocess.run(
        [sys.executable, "-m", "vidfer", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert again.returncode == 0, again.stderr
    assert "0 fold(s) trained, 5 already finished" in again.stdout
    assert "uar:" in again.stdout and "war:" in again.stdout and "±" in again.stdout
    assert "recall of " in again.stdout
    assert stamps(out / "folds") == before
    assert json.loads((out / "experiment.json").read_text()) == record

    # A fold interrupted after its training resumes from its checkpoint: no epoch again.
    (out / "folds/fold2/fold.json").unlink()
    last = (out / "folds/fold2/checkpoints/last.pt").stat().st_mtime_ns
    result = run_experiment(config, out, protocol=ProtocolConfig(name="subject_kfold", folds=5))
    assert (result.trained, len(result.reused)) == (["fold2"], 4)
    assert (out / "folds/fold2/checkpoints/last.pt").stat().st_mtime_ns == last
    assert result.record == record
    # A fold finished before UAR, WAR and per-class recall were recorded reads with them.
    entry = json.loads((out / "folds/fold1/fold.json").read_text())
    for name in ("uar", "war"):
        del entry["metrics"][name]
    del entry["per_class_recall"]
    (out / "folds/fold1/fold.json").write_text(json.dumps(entry))
    assert (
        run_experiment(config, out, protocol=ProtocolConfig(name="subject_kfold", folds=5)).record
        == record
    )

    # Another config or protocol in the same folder is refused, naming what differs.
    assert main([*args, "--out", str(out), "--set", "train.epochs=2"]) == 2
    assert "fold0/config.yaml: the fold was trained with another config" in capsys.readouterr().err
    assert main(["experiment", str(config), "--protocol", "loso", "--out", str(out)]) == 2
    assert "experiment.json: made with protocol" in capsys.readouterr().err


def split_manifest(actions: Path, name: str, test_split) -> Path:
    """A copy of the actions manifest whose split column is ``test_split(actor, label)``."""
    lines = actions.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    column = header.split(",").index("split")
    fixed = []
    for line in rows:
        fields = line.split(",")
        fields[column] = test_split(fields[3], fields[1])
        fixed.append(",".join(fields))
    manifest = actions.parent / name
    manifest.write_text("\n".join([header, *fixed]) + "\n")
    return manifest


def test_official_splits_and_person_specific_results(actions, tmp_path, capsys):
    """One fold per official manifest (paths relative to the config); GEMEP-FERA's PS/PI: a
    test actor also seen in training is person-specific."""
    # Split 1: actors a01 and a02 test, but a01's walk_left trains (a01 is person-specific).
    first = split_manifest(
        actions,
        "split1.csv",
        lambda actor, label: (
            "test"
            if actor in ("a01", "a02") and (actor, label) != ("a01", "walk_left")
            else "train"
        ),
    )
    second = split_manifest(actions, "split2.csv", lambda a, _: "test" if a == "a03" else "train")
    without = write_config(tmp_path, first)
    assert main(["experiment", str(without), "--out", str(tmp_path / "none")]) == 2
    assert "no protocol; add a 'protocol:' section or pass --protocol NAME" in (
        capsys.readouterr().err
    )
    manifests = [os.path.relpath(path, tmp_path) for path in (first, second)]
    protocol = {"name": "official", "manifests": manifests}
    config = write_config(tmp_path, first, protocol=protocol)
    result = run_experiment(config, tmp_path / "exp")
    one, two = result.record["folds"]
    assert one["test"] == 7 and one["test_subjects"] == ["a01", "a02"]
    assert two["test"] == 4 and two["test_subjects"] == ["a03"] and "subsets" not in two
    # The validation share is carved from the training actors only.
    assert one["train"] + one["val"] == 13 and two["train"] + two["val"] == 16
    subsets = one["subsets"]
    assert subsets["person_specific"]["count"] == 3  # a01's other three videos
    assert subsets["person_independent"]["count"] == 4
    with (tmp_path / "exp/folds/fold0/eval_test/predictions.csv").open(newline="") as handle:
        predictions = list(csv.DictReader(handle))
    pi = [p for p in predictions if p["video_id"].startswith("a02")]
    assert subsets["person_independent"]["accuracy"] == pytest.approx(
        np.mean([p["label"] == p["prediction"] for p in pi])
    )


def test_swap_without_a_test_partition_scores_the_stopping_partition(actions, tmp_path):
    """EmotiW-style: train on train and stop on val, then the other way round; without a test
    partition each fold is scored on the videos it stopped on."""
    manifest = split_manifest(
        actions, "train_val.csv", lambda a, _: "val" if a in ("a01", "a02") else "train"
    )
    config = write_config(tmp_path, manifest, protocol={"name": "swap"})
    result = run_experiment(config, tmp_path / "exp")
    first, second = result.record["folds"]
    assert (first["train"], first["val"], first["test"]) == (12, 8, 8)
    assert (second["train"], second["val"], second["test"]) == (8, 12, 12)
    assert first["test_subjects"] == ["a01", "a02"]
    assert second["test_subjects"] == ["a03", "a04", "a05"]
    for fold in (first, second):
        folder = tmp_path / "exp" / fold["run"]
        rows = fold_rows(folder)
        assert not rows["test"] and len(rows["val"]) == fold["val"]  # listed once, as val
        for name in ("predictions.csv", "metrics.json"):
            assert (folder / "eval_test" / name).read_text() == (
                folder / "eval_val" / name
            ).read_text()
    # Fold 1 trained on the actors fold 0 stopped on.
    assert {r["subject"] for r in fold_rows(tmp_path / "exp/folds/fold1")["train"]} == {
        "a01",
        "a02",
    }
