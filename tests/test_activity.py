"""Kahou et al.'s activity modality: sparse codes, a bag of words, SVMs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from vidfer.cli import main
from vidfer.config import ActivityConfig, parse_config
from vidfer.data.synth import make_actions
from vidfer.errors import ConfigError
from vidfer.training.activity_pipeline import bag_of_words, fit_vocabulary


def test_bag_of_words_counts_nearest_words():
    vocabulary = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    rows = np.array([[1.0, 1.0], [9.0, 1.0], [8.0, -2.0], [0.5, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(bag_of_words(rows, vocabulary), [0.5, 0.5, 0.0])


def test_vocabulary_is_seeded_and_needs_enough_descriptors():
    rng = np.random.default_rng(0)
    # Three well-separated clouds: k-means finds their centres.
    clouds = [rng.normal(centre, 0.1, size=(40, 2)) for centre in ((0, 0), (5, 5), (-5, 5))]
    settings = ActivityConfig(words=3)
    first = fit_vocabulary(clouds, settings, seed=1)
    np.testing.assert_array_equal(first, fit_vocabulary(clouds, settings, seed=1))
    found = sorted(map(tuple, np.round(first).astype(int).tolist()))
    assert found == [(-5, 5), (0, 0), (5, 5)]
    with pytest.raises(ConfigError, match=r"activity\.words 500.*only 120"):
        fit_vocabulary(clouds, ActivityConfig(words=500), seed=0)


def test_config_takes_one_pipeline_and_an_svm():
    base = {"data": {"manifest": "m.csv"}}
    with pytest.raises(ConfigError, match="not several"):
        parse_config({**base, "activity": {}, "sparse_ae": {}})
    with pytest.raises(ConfigError, match="linear_svm or rbf_svm"):
        parse_config({**base, "activity": {"classifier": {"name": "irnn"}}})
    config = parse_config({**base, "activity": {}})
    assert config.activity is not None
    assert (config.activity.patch, config.activity.depth) == (16, 10)  # Kahou's blocks
    assert not config.activity.shift_search


@pytest.mark.slow
def test_train_evaluate_and_fuse_end_to_end(tmp_path: Path):
    manifest = make_actions(tmp_path / "actions", videos_per_class=3, size=32)
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "activity": {
            "patch": 8,
            "depth": 4,
            "codes": 8,
            "patches_per_video": 10,
            "epochs": 1,
            "motion_share": 0.05,
            "grayscale": False,
            "words": 6,
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run)]) == 0
    for name in ("checkpoints/best.pt", "basis.png", "sparsity.json", "eval_val/metrics.json"):
        assert (run / name).exists(), name
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["stage"] for line in lines] == ["autoencoder", "svm"]
    assert "C" in lines[-1] and "gamma" in lines[-1]  # RBF grid search on val

    # Evaluation from the checkpoint gives the training-time predictions again.
    written = (run / "eval_test" / "predictions.csv").read_text()
    (run / "eval_test" / "predictions.csv").unlink()
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    assert (run / "eval_test" / "predictions.csv").read_text() == written

    # Its predictions are in the common format: the fusion takes it like any run.
    other = tmp_path / "other"
    assert main(["train", str(path), "--out", str(other), "--set", "activity.words=4"]) == 0
    fused = tmp_path / "fused"
    assert main(["fuse", str(run), str(other), "--out", str(fused), "--method", "mean"]) == 0
    assert (fused / "comparison.md").exists()

    # No per-frame timeline for a bag of words: a clear error, exit 2.
    video = next(manifest.parent.rglob("*.mp4"))
    assert main(["predict", str(video), "--run", str(run), "--out", str(tmp_path / "p")]) == 2
