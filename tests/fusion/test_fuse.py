"""Decision-level fusion of runs: Kahou's random search, the prediction format, ``vidfer fuse``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidfer.cli import main
from vidfer.config import parse_config
from vidfer.data.synth import make_expressions
from vidfer.errors import ConfigError
from vidfer.fusion.fuse import FusionSpec, fuse_runs
from vidfer.fusion.network import NetworkSettings
from vidfer.fusion.predictions import RunPredictions, align, read_predictions
from vidfer.fusion.random_search import SearchSettings, fuse, random_search
from vidfer.pipelines import train

from helpers import vidfer_forked

QUICK = SearchSettings(samples=5000, block=2000, sigma=0.5, decay=0.5, min_sigma=0.05, chunk=1000)


def complementary(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes; model 0 knows class 0 well, model 1 class 1, model 2 is noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    scores = rng.dirichlet(np.ones(3), size=(3, n))  # (M, N, K)
    for model in (0, 1):
        hit = labels == model
        scores[model, hit, model] += 1.5
        scores[model, ~hit, model] += 0.6  # ... and over-predicts it elsewhere
    return scores / scores.sum(axis=2, keepdims=True), labels


def accuracy(weights: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(fuse(weights, scores).argmax(axis=1) == labels))


def test_random_search_beats_single_models_reproducibly() -> None:
    scores, labels = complementary()
    result = random_search(scores, labels, QUICK)
    singles = [float(np.mean(s.argmax(axis=1) == labels)) for s in scores]
    assert result.accuracy > max(singles)
    assert result.accuracy == pytest.approx(accuracy(result.weights, scores, labels))
    np.testing.assert_allclose(result.weights.sum(axis=0), 1.0)
    assert (result.weights >= 0).all()
    # The budget is spent as configured: 1 + M starting sets, the uniform draws, the blocks.
    blocks = 0
    sigma = QUICK.sigma
    while sigma >= QUICK.min_sigma:
        blocks, sigma = blocks + 1, sigma * QUICK.decay
    assert result.evaluations == 1 + 3 + QUICK.samples + blocks * QUICK.block
    again = random_search(scores, labels, QUICK)
    np.testing.assert_array_equal(again.weights, result.weights)
    assert [h[0] for h in result.history] == sorted(h[0] for h in result.history)


def test_search_never_falls_below_the_best_single_model() -> None:
    scores, labels = complementary(seed=3)
    scores[2] = np.eye(3)[labels] * 0.9 + 0.1 / 3  # model 2 is now perfect
    result = random_search(scores, labels, SearchSettings(samples=0, block=0))
    assert result.accuracy == 1.0
    np.testing.assert_array_equal(result.weights, np.eye(3)[[2, 2, 2]].T)


def predictions(run: str, ids: list[str], labels: list[int], classes: list[str]) -> RunPredictions:
    probabilities = np.full((len(ids), len(classes)), 1.0 / len(classes))
    return RunPredictions(Path(run), "val", classes, ids, np.array(labels), probabilities)


def test_align_reorders_and_refuses_mismatches() -> None:
    a = predictions("a", ["x", "y", "z"], [0, 1, 0], ["p", "q"])
    b = RunPredictions(
        Path("b"), "val", ["p", "q"], ["z", "x", "y"], np.array([0, 0, 1]), np.eye(2)[[0, 0, 1]]
    )
    aligned = align([a, b])
    assert aligned.video_ids == ["x", "y", "z"] and aligned.labels.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(aligned.scores[1], np.eye(2)[[0, 1, 0]])
    assert aligned.present.all()
    with pytest.raises(ConfigError, match="classes"):
        align([a, predictions("c", ["x", "y", "z"], [0, 1, 0], ["q", "p"])])
    with pytest.raises(ConfigError, match=r"no val prediction for 1 video\(s\).*\['z'\]"):
        align([a, predictions("d", ["x", "y"], [0, 1], ["p", "q"])])
    with pytest.raises(ConfigError, match=r"labels of \['y'\]"):
        align([a, predictions("e", ["x", "y", "z"], [0, 0, 0], ["p", "q"])])


def test_a_declared_missing_modality_is_fused_from_the_runs_present() -> None:
    """An audio-like run lacking video z (listed in missing.csv) leaves z to the other run."""
    video = RunPredictions(
        Path("v"), "val", ["p", "q"], ["x", "y", "z"], np.array([0, 1, 1]),
        np.array([[0.6, 0.4], [0.45, 0.55], [0.3, 0.7]]),
    )  # fmt: skip
    audio = RunPredictions(
        Path("a"), "val", ["p", "q"], ["x", "y"], np.array([0, 1]),
        np.array([[0.9, 0.1], [0.2, 0.8]]), missing={"z": "no_audio"},
    )  # fmt: skip
    aligned = align([video, audio])
    assert aligned.present.tolist() == [[True, True, True], [True, True, False]]
    weights = np.array([[0.5, 0.5], [0.5, 0.5]])
    fused = fuse(weights, aligned.scores, aligned.present)
    np.testing.assert_allclose(fused[2], [0.3, 0.7])  # the video run alone
    np.testing.assert_allclose(fused[0], [0.75, 0.25])
    result = random_search(aligned.scores, aligned.labels, QUICK, aligned.present)
    assert result.accuracy == 1.0


def test_malformed_predictions_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "classes.json").write_text('["p", "q"]')
    folder = tmp_path / "eval_val"
    folder.mkdir()
    (folder / "predictions.csv").write_text(
        "video_id,label,prediction,p_p,p_q\nx,p,p,0.9,0.1\ny,q,q,0.2,oops\n"
    )
    with pytest.raises(ConfigError, match=r"predictions\.csv: line 3"):
        read_predictions(tmp_path, "val")
    with pytest.raises(ConfigError, match="--search-split val"):
        FusionSpec(runs=[tmp_path, tmp_path], search_split="train").check()
    with pytest.raises(ConfigError, match="one weight per run"):
        FusionSpec(runs=[tmp_path, tmp_path], method="weights", weights=[1.0]).check()


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two frame pipelines over the FER2013 mini-Xception and a tiny 3D ResNet, one dataset."""
    root = tmp_path_factory.mktemp("fuse")
    manifest = make_expressions(root / "expr", videos_per_class=5, size=48)
    data = {"manifest": str(manifest), "prepare": {"size": 48}, "workers": 1}
    features = {"cnn": "mini_xception", "layer": "features"}
    configs = {
        "svm": {"frames": {"extractors": [features], "aggregate": "mean_var",
                           "classifier": {"name": "linear_svm"}}},
        "average": {"frames": {"extractors": [{"cnn": "mini_xception", "layer": "logits"}],
                               "classifier": {"name": "average"}}},
        "r3d": {"sampler": {"name": "uniform", "clip_len": 8}, "transforms": {"size": 40},
                "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
                "train": {"epochs": 2, "batch_size": 4}},
    }  # fmt: skip
    runs = []
    for name, extra in configs.items():
        train(parse_config({"seed": 0, "data": data, **extra}), root / name)
        runs.append(root / name)
    return runs


@pytest.mark.slow
def test_vidfer_fuse_reports_the_fusion_beside_each_run(
    three_runs: list[Path], tmp_path: Path
) -> None:
    kahou = ["--search-on-stopping-split"]  # the SVM and the 3D run chose their model on val
    result = vidfer_forked(
        "fuse", *map(str, three_runs), "--out", str(tmp_path / "fused"), "--samples", "20000",
        "--block", "5000", *kahou,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    comparison = json.loads((tmp_path / "fused" / "comparison.json").read_text())
    val = comparison["val"]
    fused = next(row for name, row in val.items() if name.startswith("fusion"))
    singles = [row["accuracy"] for name, row in val.items() if not name.startswith("fusion")]
    assert len(singles) == 3 and fused["accuracy"] >= max(singles)
    assert all(np.asarray(row["confusion"]).shape == (4, 4) for row in val.values())
    assert "fused accuracy" in result.stdout
    record = json.loads((tmp_path / "fused" / "fusion.json").read_text())
    assert record["search"]["evaluations"] > 20000 and len(record["weights"]) == 3
    for split in ("val", "test"):
        assert (tmp_path / "fused" / f"eval_{split}" / "predictions.csv").is_file()
    assert "| fusion (search)" in (tmp_path / "fused" / "comparison.md").read_text()
    # Same seed, same weights; fixed weights (Xu) and SCI work on the same runs.
    again = fuse_runs(
        FusionSpec(
            runs=three_runs,
            search=SearchSettings(samples=20000, block=5000),
            search_on_stopping=True,
        ),
        tmp_path / "again",
    )
    assert again["val"] == val
    assert (
        json.loads((tmp_path / "again" / "fusion.json").read_text())["weights"] == record["weights"]
    )
    xu = fuse_runs(
        FusionSpec(runs=three_runs, method="weights", weights=[0.5, 0.25, 0.25]), tmp_path / "xu"
    )
    sci = fuse_runs(FusionSpec(runs=three_runs, method="sci"), tmp_path / "sci")
    assert set(xu) == set(sci) == {"val", "test"}
    # Feature-level fusion: an MLP on the runs' video-level features, trained on train.
    network = fuse_runs(
        FusionSpec(
            runs=three_runs,
            method="network",
            network=NetworkSettings(epochs=30),
            search_on_stopping=True,
        ),
        tmp_path / "net",
    )
    fused_net = next(row for name, row in network["test"].items() if name.startswith("fusion"))
    assert fused_net["count"] == 4 and (tmp_path / "net" / "checkpoints" / "best.pt").is_file()
    assert json.loads((tmp_path / "net" / "fusion.json").read_text())["network"]["joint"] == 70
    # A folder that is no run: exit status 2 (in this process: an exception would fail here).
    bad = ["fuse", str(three_runs[0]), str(three_runs[0].parent / "expr"), "--out", str(tmp_path)]
    assert main(bad) == 2
