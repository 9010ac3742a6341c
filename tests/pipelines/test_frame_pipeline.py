"""Frame-feature pipelines: every shipped Kahou/Xu config through ``vidfer train`` on real data.

One small synthetic expression set is prepared once (its first 32 frames per video:
``prepare.max_frames``); the frame CNNs (Kahou's 9x9 CNN, VGG-16,
ResNet-10) and a C3D run are trained for one epoch on it; then each paper config runs end to end
with its data and run paths pointed at these, and must write the run folder of a 3D model, which
``vidfer evaluate`` reads back to the same numbers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidfer.cli import main
from vidfer.config import load_config
from vidfer.data.prepared import load_dataset
from vidfer.errors import ConfigError
from vidfer.features.extract import extract_frame_features, load_frame_source
from vidfer.features.store import FeatureStore
from vidfer.pipelines import evaluate_run, train
from vidfer.predict import predict_video
from vidfer.training.frames import FrameTrainSettings, train_frames

from helpers import CONFIGS, copy_dataset, vidfer_forked

# 32 frames per video (of 48-96) are enough for every pipeline, C3D's 16-frame windows included.
DATA = {
    "prepare.size": 32,
    "prepare.max_frames": 32,
    "prepare.grayscale": "false",
    "prepare.faces": "null",
    "workers": 1,
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, expressions_32: Path) -> dict[str, Path]:
    """The prepared set's config, three frame-CNN runs and a C3D run."""
    root = tmp_path_factory.mktemp("frames")
    manifest = copy_dataset(expressions_32, root / "expr")
    data = {"manifest": str(manifest), "prepare": {"size": 32, "max_frames": 32}, "workers": 1}
    source = root / "data.yaml"
    source.write_text(yaml.safe_dump({"data": data}))
    paths = {"manifest": manifest, "source": source}
    for name, params in (
        ("kahou_cnn", {"input_size": 32}),
        ("vgg16", {"input_size": 32, "pool": 1}),
        ("resnet10", {"input_size": 32, "fc1": 16}),
    ):
        settings = FrameTrainSettings(
            model=name, params=params, epochs=1, batch_size=16, every=4, device="cpu"
        )
        train_frames(source, root / name, settings)
        paths[name] = root / name
    c3d = load_config(
        CONFIGS / "xu2017_afew_c3d.yaml",
        [
            *overrides(manifest),
            "transforms.size=32",
            "model.params.width=0.125",
            "model.params.in_size=32",
            "train.epochs=1",
            "train.batch_size=4",
        ],
    )
    train(c3d, root / "c3d")
    paths["c3d"] = root / "c3d"
    return paths


def overrides(manifest: Path) -> list[str]:
    return [f"data.manifest={manifest}", *(f"data.{k}={v}" for k, v in DATA.items())]


def pipeline_overrides(name: str, setup: dict[str, Path]) -> list[str]:
    """Data and run paths of a paper config pointed at the test's set and runs."""
    runs = {
        "kahou2015_afew_irnn": ["kahou_cnn"],
        "kahou2015_afew_cnn_svm": ["kahou_cnn"],
        "xu2017_afew_aggregated_svm": ["vgg16", "resnet10"],
        "xu2017_afew_bilstm": ["vgg16"],
    }
    out = [*overrides(setup["manifest"]), "train.epochs=2", "train.batch_size=4"]
    if name == "xu2017_afew_c3d_svm":
        return [*out, f"frames.extractors.0.video_run={setup['c3d']}"]
    return out + [
        f"frames.extractors.{i}.frame_run={setup[run]}" for i, run in enumerate(runs[name])
    ]


def read_probabilities(path: Path) -> np.ndarray:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return np.array([[float(v) for k, v in row.items() if k.startswith("p_")] for row in rows])


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "kahou2015_afew_irnn",
        "kahou2015_afew_cnn_svm",
        "xu2017_afew_aggregated_svm",
        "xu2017_afew_bilstm",
        "xu2017_afew_c3d_svm",
    ],
)
def test_paper_config_trains_end_to_end(name: str, setup: dict[str, Path], tmp_path: Path) -> None:
    config = load_config(CONFIGS / f"{name}.yaml", pipeline_overrides(name, setup))
    result = train(config, tmp_path / "run")
    run = tmp_path / "run"
    for part in ("config.yaml", "classes.json", "metrics.jsonl", "curves.png"):
        assert (run / part).is_file(), part
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "checkpoints/last.pt").is_file()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == result.epochs >= 1
    assert "val_accuracy" in json.loads(lines[-1])
    for split in ("val", "test"):
        metrics = json.loads((run / f"eval_{split}" / "metrics.json").read_text())
        assert metrics["count"] == 4 and 0 <= metrics["accuracy"] <= 1
        assert (run / f"eval_{split}" / "confusion.csv").is_file()
    # Evaluation of the run folder gives the numbers training wrote.
    written = read_probabilities(run / "eval_test" / "predictions.csv")
    (run / "eval_test").rename(run / "eval_test_at_training")
    again = evaluate_run(run, "test")
    np.testing.assert_allclose(read_probabilities(run / "eval_test" / "predictions.csv"), written)
    assert again["count"] == 4
    np.testing.assert_allclose(written.sum(axis=1), 1.0, atol=1e-4)
    # A new video: the same video-level probabilities as evaluation, and a per-frame timeline
    # (empty only where the steps are not frames: the C3D features' windows).
    with (setup["manifest"].parent / "manifest.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["split"] == "test")
    prediction = predict_video(setup["manifest"].parent / row["path"], tmp_path / "pred", run)
    order = [line.split(",")[0] for line in (run / "eval_test_at_training" / "predictions.csv")
             .read_text().splitlines()[1:]]  # fmt: skip
    expected = written[order.index(row["video_id"])]
    got = np.array(list(prediction.probabilities.values()))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Read in pieces of 5 frames (frame CNNs see one piece at a time): the same probabilities.
    pieces = predict_video(
        setup["manifest"].parent / row["path"], tmp_path / "pieces", run, chunk_frames=5
    )
    np.testing.assert_allclose(list(pieces.probabilities.values()), got, atol=1e-4)
    with (tmp_path / "pred" / "timeline.csv").open(newline="") as handle:
        timeline = list(csv.DictReader(handle))
    scored = [r for r in timeline if r[f"p_{prediction.label}"] != ""]
    assert len(scored) == (0 if name == "xu2017_afew_c3d_svm" else len(timeline))


@pytest.mark.slow
def test_per_frame_averaging_and_cli(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``average`` maps the CNN's classes by name; the CLI trains (in a process of its own, a
    fork of this one) and evaluates a pipeline."""
    args = [
        *pipeline_overrides("kahou2015_afew_cnn_svm", setup),
        "frames.classifier.name=average",
        "frames.classifier.params={}",
    ]
    sets = [item for arg in args for item in ("--set", arg)]
    config = str(CONFIGS / "kahou2015_afew_cnn_svm.yaml")
    result = vidfer_forked("train", config, "--out", str(tmp_path / "avg"), *sets)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "avg" / "metrics.jsonl").read_text().splitlines()[0])
    assert set(metrics) >= {"epoch", "val_loss", "val_accuracy"}
    # The CLI's other commands in this process.
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "avg"), "--split", "test"]) == 0
    assert "accuracy" in capsys.readouterr().out
    # A bad layer is named with the CNN's layers, through the CLI: one line, exit 2.
    bad_layer = ["--set", "frames.extractors.0.layer=fc9"]
    assert main(["train", config, "--out", str(tmp_path / "bad"), *sets, *bad_layer]) == 2
    err = capsys.readouterr().err
    assert "layer 'fc9'" in err and "conv2" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_pipeline_misconfigurations_fail_clearly(setup: dict[str, Path], tmp_path: Path) -> None:
    cnn, c3d = setup["kahou_cnn"], setup["c3d"]
    two = [
        *pipeline_overrides("kahou2015_afew_cnn_svm", setup),
        "frames.classifier={name: average}",
        f"frames.extractors=[{{frame_run: {cnn}, layer: logits}}, {{cnn: mini_xception}}]",
    ]
    with pytest.raises(ConfigError, match="average takes exactly one extractor"):
        train(load_config(CONFIGS / "kahou2015_afew_cnn_svm.yaml", two), tmp_path / "a")
    mixed = [
        *pipeline_overrides("kahou2015_afew_irnn", setup),
        f"frames.extractors=[{{frame_run: {cnn}}}, {{video_run: {c3d}}}]",
    ]
    with pytest.raises(ConfigError, match="one step per frame in every extractor"):
        train(load_config(CONFIGS / "kahou2015_afew_irnn.yaml", mixed), tmp_path / "b")
    irnn = CONFIGS / "kahou2015_afew_irnn.yaml"
    with pytest.raises(ConfigError, match=r"option 'frames\.extractors\.0'"):
        load_config(irnn, ["frames.extractors=[{layer: conv2}]"])
    with pytest.raises(ConfigError, match="no item '3'"):
        load_config(irnn, ["frames.extractors.3.layer=x"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "checkpoints").exists()


def test_frame_features_are_cached_and_resume(setup: dict[str, Path]) -> None:
    """A second extraction reads the cache; a lost entry alone is recomputed, identically."""
    config = load_config(
        CONFIGS / "kahou2015_afew_irnn.yaml", pipeline_overrides("kahou2015_afew_irnn", setup)
    )
    assert config.frames is not None
    extractor = config.frames.extractors[0]
    data = load_dataset(config.data)
    first, classes = extract_frame_features(extractor, data, torch.device("cpu"))
    assert classes == list(data.manifest.classes)  # the frame run's classes
    identity = load_frame_source(extractor, torch.device("cpu")).identity
    folder = FeatureStore(data.store.folder / "features", identity).folder
    stamps = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.npy")}
    assert len(stamps) == len(data.items)
    lost = data.items[0]
    (folder / f"{lost.key}.json").unlink()  # as if killed before the record was written
    again, _ = extract_frame_features(extractor, data, torch.device("cpu"))
    after = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.npy")}
    changed = {name for name in stamps if after[name] != stamps[name]}
    assert changed == {f"{lost.key}.npy"}
    for video, features in first.items():
        np.testing.assert_array_equal(again[video], features)
        # One row per stored frame; conv2 of a 32x32 input flattened: 32 maps x 8 x 8.
        assert features.shape[1] == 32 * 8 * 8
