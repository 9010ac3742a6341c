"""Image sources (FER2013 CSV, folder tree, prepared video frames), ``train_frames`` end to end,
``load_frame_run``, and ``vidfer train-frames`` in a process of its own (a fork of the test's)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from vidfer.cli import main
from vidfer.config import parse_config, parse_section
from vidfer.data.image_dataset import Augmentation, ImageDataset
from vidfer.data.images import (
    ImageSet,
    _hold_out_val,
    load_images,
    video_frame_images,
)
from vidfer.data.synth import make_expressions
from vidfer.errors import CheckpointError, ConfigError, ManifestError
from vidfer.models.frame_cnns import build_frame_cnn
from vidfer.models.frame_runs import load_frame_run
from vidfer.training.frames import FrameTrainSettings, predict_images, train_frames

from helpers import vidfer_forked

FAST = {"kernel": 5, "maps": [8, 8, 16], "input_size": 24}


def _pattern(label: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A noisy RGB image whose bright region (top, bottom, centre) is its class; flip-invariant."""
    image = rng.integers(0, 70, (size, size, 3), dtype=np.uint8)
    half, quarter = size // 2, size // 4
    region = {
        "top": np.s_[:half],
        "bottom": np.s_[half:],
        "centre": np.s_[quarter:-quarter, quarter:-quarter],
    }[label]
    image[region] += 150
    return image


def _write_tree(root: Path, per_class: int, splits: tuple[str, ...] = ()) -> Path:
    """``root/[split/]label/i.png`` images of three classes, written by OpenCV."""
    rng = np.random.default_rng(0)
    for split in splits or ("",):
        for label in ("top", "bottom", "centre"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rgb = _pattern(label, rng)
                cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root


def _fer_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return path


def _pixels(value: int, count: int = 2304) -> str:
    return " ".join([str(value)] * count)


def test_fer2013_csv_is_parsed_with_usage_splits(tmp_path: Path) -> None:
    rows = [
        ("3", _pixels(10), "Training"),
        ("0", " ".join(str(v % 256) for v in range(2304)), "Training"),
        ("6", _pixels(255), "PublicTest"),
        ("5", _pixels(0), "PrivateTest"),
    ]
    images = load_images(_fer_csv(tmp_path / "fer2013.csv", rows), val_fraction=0.5)
    assert images.kind == "fer2013" and images.classes[3] == "happy" and len(images) == 4
    assert images.labels.tolist() == [3, 0, 6, 5]
    assert images.splits.tolist() == ["train", "train", "val", "test"]
    assert images.ids[0] == "fer2013:2"
    second = images.image(1)
    assert second.shape == (48, 48, 3) and second.dtype == np.uint8
    assert second[0, :3, 0].tolist() == [0, 1, 2] and second[1, 0, 2] == 48  # row-major, gray
    assert images.image(2).min() == 255


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("3", _pixels(1, 2000), "Training"), r"fer\.csv:3: pixels has 2000 values, not 2304"),
        (("3", _pixels(1) + " x", "Training"), r"fer\.csv:3: pixels holds a value that is not"),
        (("3", _pixels(300), "Training"), r"fer\.csv:3: pixels holds a value outside 0-255"),
        (("9", _pixels(1), "Training"), r"fer\.csv:3: emotion '9' is not a class index 0-6"),
        (("3", _pixels(1), "Train"), r"fer\.csv:3: Usage 'Train' is not one of Training"),
    ],
)
def test_bad_fer2013_rows_name_the_line(
    tmp_path: Path, row: tuple[str, str, str], message: str
) -> None:
    path = _fer_csv(tmp_path / "fer.csv", [("1", _pixels(5), "Training"), row])
    with pytest.raises(ManifestError, match=message):
        load_images(path)


def test_csv_without_fer2013_header_and_unknown_sources(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,label\na.mp4,happy\n")
    with pytest.raises(ConfigError, match="not a FER2013 CSV: the header must be emotion,pixels"):
        load_images(tmp_path / "manifest.csv")
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_images(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="unknown image source"):
        load_images(tmp_path / "notes.txt")
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no images"):
        load_images(tmp_path / "empty")


def test_folder_tree_flat_with_stratified_val_and_split_layout(tmp_path: Path) -> None:
    flat = load_images(_write_tree(tmp_path / "flat", 10), val_fraction=0.3, seed=1)
    assert flat.kind == "folder" and flat.classes == ("bottom", "centre", "top")
    assert flat.counts() == {"train": 21, "val": 9, "test": 0}
    for label in range(3):  # stratified: three of each class
        assert int(((flat.splits == "val") & (flat.labels == label)).sum()) == 3
    assert flat.ids[0] == "bottom/0.png"
    top = flat.image(flat.ids.index("top/0.png"))
    assert top.shape == (32, 32, 3) and top[:16].mean() > top[16:].mean() + 100  # RGB, not BGR
    again = load_images(tmp_path / "flat", val_fraction=0.3, seed=1)
    assert again.splits.tolist() == flat.splits.tolist()

    layout = load_images(_write_tree(tmp_path / "layout", 2, ("train", "val", "test")))
    assert layout.counts() == {"train": 6, "val": 6, "test": 6}
    assert layout.ids[0] == "test/bottom/0.png"


def test_val_hold_out_keeps_each_video_whole() -> None:
    ids = tuple(f"v{video}/{frame}" for video in range(6) for frame in range(4))
    images = ImageSet(
        source=Path("config.yaml"),
        kind="frames",
        classes=("a", "b"),
        labels=np.repeat([0, 1, 0, 1, 0, 1], 4),
        splits=np.array(["train"] * 24),
        ids=ids,
        reader=lambda index: np.zeros((8, 8, 3), np.uint8),
    )
    held = _hold_out_val(images, 0.33, seed=0)  # 2 of 6 videos
    by_video = {video: set(held.splits[video * 4 : video * 4 + 4]) for video in range(6)}
    assert all(len(splits) == 1 for splits in by_video.values())
    assert sorted(held.labels[held.splits == "val"][::4].tolist()) == [0, 1]


@pytest.fixture(scope="module")
def expressions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny prepared synthetic expression dataset; returns its run config YAML."""
    root = tmp_path_factory.mktemp("expressions")
    manifest = make_expressions(root / "data", videos_per_class=3, size=48)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump({"data": {"manifest": str(manifest), "prepare": {"size": 48}}}))
    return path


def test_frames_of_prepared_videos(expressions: Path) -> None:
    config = parse_config(yaml.safe_load(expressions.read_text()))
    images = video_frame_images(config.data, source=expressions, every=4)
    from vidfer.data.prepared import load_dataset

    dataset = load_dataset(config.data)
    assert images.classes == tuple(dataset.manifest.classes)
    assert len(images) == sum(-(-item.num_frames // 4) for item in dataset.items)
    first = dataset.items[0]
    assert images.ids[1] == f"{first.row.video_id}/4"
    np.testing.assert_array_equal(images.image(1), dataset.store.frames(first.key)[4])
    for item in dataset.items:
        mine = [i for i, name in enumerate(images.ids) if name.startswith(f"{item.row.video_id}/")]
        assert set(images.labels[mine]) == {item.row.label_index}
        assert set(images.splits[mine]) == {item.row.split}
    detected = load_images(expressions, every=4)
    assert detected.kind == "frames" and detected.counts() == images.counts()


def test_dataset_augmentation_and_test_transform(tmp_path: Path) -> None:
    images = load_images(_write_tree(tmp_path / "tree", 2), val_fraction=0)
    model = build_frame_cnn("kahou_cnn", 3, **FAST)
    train = ImageDataset(images, [0, 1], model.prepare, 24, Augmentation(rotation=10))
    torch.manual_seed(0)
    x, label = train[0]
    torch.manual_seed(0)
    assert torch.equal(train[0][0], x)  # driven by torch's seeded generator
    assert x.shape == (1, 24, 24) and label == int(images.labels[0])
    test = ImageDataset(images, [0], model.prepare, 24)
    expected = model.prepare(images.image(0)[None])[0]
    torch.testing.assert_close(test[0][0], expected)
    with pytest.raises(ConfigError, match="crop_scale"):
        Augmentation(crop_scale=0).check()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_tree(tmp_path_factory.mktemp("tree"), 12, ("train", "val", "test"))


def test_train_frames_writes_the_run_and_reloads(tree: Path, tmp_path: Path) -> None:
    settings = FrameTrainSettings(model="kahou_cnn", params=FAST, epochs=2, batch_size=16)
    result = train_frames(tree, tmp_path / "run", settings)
    run = tmp_path / "run"
    assert result.epochs == 2 and not result.stopped_early
    for name in ("settings.json", "classes.json", "curves.png", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.json").is_file()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= set(lines[0])
    saved = json.loads((run / "settings.json").read_text())
    assert saved["source_kind"] == "folder" and saved["images"] == {
        "train": 36,
        "val": 36,
        "test": 36,
    }
    assert json.loads((run / "classes.json").read_text()) == ["bottom", "centre", "top"]
    metrics = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert metrics["count"] == 36 and metrics == result.evaluations["test"]

    model, classes = load_frame_run(run)
    assert classes == ["bottom", "centre", "top"] and not model.training
    rows = list(csv.DictReader((run / "eval_test" / "predictions.csv").open()))
    assert rows[0]["video_id"] == "test/bottom/0.png"
    images = load_images(tree)
    test = images.indices("test")
    probs = predict_images(model, np.stack([images.image(i) for i in test]))
    recorded = np.array([[float(row[f"p_{c}"]) for c in classes] for row in rows])
    np.testing.assert_allclose(probs, recorded, atol=2e-6)

    again = train_frames(tree, tmp_path / "again", settings)
    assert [m["val_loss"] for m in again.metrics] == [m["val_loss"] for m in lines]  # seeded

    with pytest.raises(ConfigError, match="already holds a run"):
        train_frames(tree, run, settings)

    # Monitoring accuracy keeps the epoch with the best validation accuracy (the first one).
    by_accuracy = settings.model_copy(update={"epochs": 3, "monitor": "accuracy"})
    monitored = train_frames(tree, tmp_path / "accuracy", by_accuracy)
    accuracies = [m["val_accuracy"] for m in monitored.metrics]
    best = json.loads((tmp_path / "accuracy" / "checkpoints" / "best.json").read_text())
    assert best["epoch"] == 1 + accuracies.index(max(accuracies))
    with pytest.raises(ConfigError, match="option 'monitor'"):
        parse_section(FrameTrainSettings, {"monitor": "f1"}, source="train-frames")


def test_fine_tuning_from_a_run_and_init_errors(tree: Path, tmp_path: Path) -> None:
    base = FrameTrainSettings(model="kahou_cnn", params=FAST, epochs=1, batch_size=16)
    train_frames(tree, tmp_path / "base", base)
    subset = tmp_path / "subset"
    for label in ("top", "bottom"):
        (subset / label).mkdir(parents=True)
        for file in (tree / "train" / label).iterdir():
            (subset / label / file.name).write_bytes(file.read_bytes())
    tuned = FrameTrainSettings(
        model="kahou_cnn", epochs=1, batch_size=8, init=str(tmp_path / "base")
    )
    result = train_frames(subset, tmp_path / "tuned", tuned)
    model, classes = load_frame_run(tmp_path / "tuned")
    assert classes == ["bottom", "top"] and model.num_classes == 2
    assert json.loads((tmp_path / "tuned" / "settings.json").read_text())["params"] == FAST
    assert "val" in result.evaluations and "test" not in result.evaluations

    with pytest.raises(ConfigError, match="kahou_cnn has no pretrained weights"):
        train_frames(tree, tmp_path / "x", FrameTrainSettings(init="pretrained", epochs=1))
    with pytest.raises(ConfigError, match="that run trained kahou_cnn, not deep_cnn"):
        train_frames(
            tree, tmp_path / "y", FrameTrainSettings(model="deep_cnn", init=str(tmp_path / "base"))
        )
    with pytest.raises(ConfigError, match="unknown parameter 'kernal'"):
        train_frames(tree, tmp_path / "z", FrameTrainSettings(params={"kernal": 5}))
    assert not (tmp_path / "z").exists()  # checked before anything is written
    with pytest.raises(CheckpointError, match="not a frame run"):
        load_frame_run(tree)
    with pytest.raises(ConfigError, match="train-frames: option 'optimizer': Input should be"):
        parse_section(FrameTrainSettings, {"optimizer": "adam"}, source="train-frames")


def test_cli_train_frames(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_run"
    result = vidfer_forked(
        "train-frames", str(tree), "--model", "kahou_cnn", "--out", str(out), "--epochs", "1",
        "--batch-size", "16", "--optimizer", "sgd", "--lr", "0.01",
        "--param", "kernel=5", "--param", "maps=[8, 8, 16]", "--param", "input_size=24",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "trained 1 epoch(s)" in result.stdout and "test accuracy" in result.stdout
    assert json.loads((out / "settings.json").read_text())["params"]["maps"] == [8, 8, 16]


def test_cli_settings_from_a_file_and_flags(tmp_path: Path, capsys) -> None:
    """--config gives the settings, flags override them; a bad one is one line naming it."""
    settings = tmp_path / "frames.yaml"
    settings.write_text("model: kahou_cnn\nepochs: 0\nlr: 0.5\n")
    out = tmp_path / "never"
    assert main(["train-frames", "x", "--out", str(out), "--config", str(settings)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"vidfer: error: train-frames ({settings} and flags): option 'epochs': "
        "Input should be greater than or equal to 1"
    )
    flags = ["train-frames", "x", "--out", str(out), "--config", str(settings), "--epochs", "1"]
    assert main(flags) == 2  # the flag's epochs pass: the missing source is what stops it
    assert "no such file or folder" in capsys.readouterr().err
    settings.write_text("epochs: 2\n")
    assert main(["train-frames", "x", "--out", str(out), "--config", str(settings)]) == 2
    assert "give the frame CNN with --model" in capsys.readouterr().err
    assert not out.exists()


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In this process (``test_cli_train_frames`` runs the command as its own process)."""
    args = ["train-frames", str(tmp_path / "nowhere"), "--model", "kahou_cnn"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert "no such file or folder" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
