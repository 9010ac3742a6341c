"""``vidfer manifest`` then ``vidfer experiment`` end to end on today's facial-expression
benchmarks, each a small tree in the dataset's exact layout with real videos (CREMA-D's are
.flv, as shipped) or frame folders of real images (jpg, png, jpeg as each dataset names them):
official folds (DFEW frames and original videos, MAFW frames and clips, FERV39k's one split; one
manifest per fold), subject-independent folds (CK+, Oulu-CASIA) and actor-disjoint folds
(RAVDESS, CREMA-D). The summary reports UAR and WAR, mean ± s.e. over the folds, and each
class's recall."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from fer_trees import cremad_tree, frames, ravdess_tree, video, write
from vidfer.cli import main
from vidfer.data.manifest import read_manifest

CLIP_FRAMES = 12


def tiny_config(
    folder: Path, manifest: Path, protocol: dict[str, object], folder_fps: float = 25.0
) -> Path:
    config = {
        "seed": 0,
        "data": {
            "manifest": str(manifest),
            "prepare": {"size": 32},
            "workers": 1,
            "frame_folder_fps": folder_fps,
        },
        "sampler": {"name": "uniform", "clip_len": 8},
        "transforms": {"size": 28, "flip": 0.0},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "train": {"epochs": 1, "batch_size": 4},
        "protocol": protocol,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def experiment(config: Path, out: Path, classes: tuple[str, ...]) -> dict:
    """Run the experiment; check UAR, WAR and per-class recall in its summary."""
    assert main(["experiment", str(config), "--out", str(out)]) == 0
    record = json.loads((out / "experiment.json").read_text())
    folds = record["folds"]
    summary = record["summary"]
    # WAR is the accuracy, UAR the mean of the per-class recalls: mean ± s.e. over the folds.
    for name, same in (("war", "accuracy"), ("uar", "mean_class_accuracy")):
        assert summary[name] == summary[same]
        assert summary[name]["n"] == len(folds) and 0.0 <= summary[name]["mean"] <= 1.0
        assert summary[name]["sem"] >= 0.0
    for fold in folds:
        recalls = fold["per_class_recall"]
        assert set(recalls) == set(classes)
        assert fold["metrics"]["uar"] == pytest.approx(sum(recalls.values()) / len(classes))
    assert set(record["per_class_recall"]) == set(classes)
    assert all(entry["n"] == len(folds) for entry in record["per_class_recall"].values())
    return record


def subjects_disjoint(record: dict, out: Path) -> list[str]:
    """The test subjects of all folds, checked: no subject in both train and test of a fold."""
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
    record = experiment(config, tmp_path / "exp", manifest.classes)
    assert subjects_disjoint(record, tmp_path / "exp") == ["01", "02", "03", "04"]


@pytest.mark.slow
def test_cremad_flv_manifest_then_actor_disjoint_experiment(tmp_path):
    root = cremad_tree(tmp_path / "crema", actors=(1001, 1002, 1003, 1004), real=True)
    assert main(["manifest", str(root), "--layout", "cremad"]) == 0
    assert len(read_manifest(root / "manifest.csv").rows) == 16
    config = tiny_config(tmp_path, root / "manifest.csv", {"name": "subject_kfold", "folds": 2})
    record = experiment(config, tmp_path / "exp", ("happy", "sad"))
    assert subjects_disjoint(record, tmp_path / "exp") == ["1001", "1002", "1003", "1004"]


# ---------------------------------------------------------------------------- official folds

FOLDS = {1: ((0, 1, 4, 5), (2, 6)), 2: ((2, 3, 6, 7), (0, 4))}
"""Two official folds over 8 clips (0-3 of one class, 4-7 of the other): (train, test) clips."""


def direction(clip: int) -> int:
    """The square's direction in clip ``clip``: the class's visible difference."""
    return 1 if clip < 4 else -1


class Official(NamedTuple):
    """A tree with official folds: ``vidfer manifest`` arguments, each clip's video or frame
    folder, and the writer of fold k's train or test list (``write_list(k, split, clips)``)."""

    layout: list[str]
    clips: list[Path]
    write_list: Callable[[int, str, tuple[int, ...]], None]
    classes: tuple[str, ...]
    numbered: bool = True


def dfew(root: Path, variant: str) -> Official:
    clips = []
    for clip in range(8):
        name = f"{clip + 1:05d}"
        if variant == "original":
            clips.append(video(root / "Clip" / "original" / f"{name}.mp4", direction(clip), clip))
        else:
            folder = root / "Clip" / "clip_224x224" / name
            clips.append(frames(folder, CLIP_FRAMES, f"{name}_{{:05d}}.jpg", direction(clip), clip))
    codes = [1] * 4 + [2] * 4  # happy, sad

    def write_list(k: int, split: str, chosen: tuple[int, ...]) -> None:
        lines = "".join(f"{clip + 1},{codes[clip]}\n" for clip in chosen)
        table = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{k}.csv"
        write(table, "video_name,label\n" + lines)

    return Official(["--layout", "dfew", "--variant", variant], clips, write_list, ("happy", "sad"))


def mafw(root: Path, variant: str) -> Official:
    clips = []
    for clip in range(8):
        name = f"{clip + 1:05d}"
        if variant == "clips":
            clips.append(video(root / "data" / "clips" / f"{name}.mp4", direction(clip), clip))
        else:
            folder = root / "data" / "frames" / name
            clips.append(frames(folder, CLIP_FRAMES, "{:03d}.jpg", direction(clip), clip))
    labels = ["anger"] * 4 + ["fear"] * 4
    sets = root / "Train & Test Set" / "single" / "no_caption"

    def write_list(k: int, split: str, chosen: tuple[int, ...]) -> None:
        lines = "".join(f"{clip + 1:05d}.mp4 {labels[clip]}\n" for clip in chosen)
        write(sets / f"set_{k}" / f"{split}.txt", lines)

    return Official(
        ["--layout", "mafw", "--variant", variant], clips, write_list, ("anger", "fear")
    )


def ferv39k(root: Path, variant: str) -> Official:
    names = [f"Action/{'Happy' if clip < 4 else 'Sad'}/{clip:04d}" for clip in range(8)]
    clips = [
        frames(root / "2_ClipsforFaceCrop" / name, CLIP_FRAMES, "{:02d}.jpg", direction(c), c)
        for c, name in enumerate(names)
    ]

    def write_list(k: int, split: str, chosen: tuple[int, ...]) -> None:
        lines = "".join(f"{names[clip]} {names[clip].split('/')[1]}\n" for clip in chosen)
        write(root / "4_setups" / "All_scenes" / f"{split}_All.csv", lines)

    return Official(["--layout", "ferv39k"], clips, write_list, ("happy", "sad"), numbered=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tree", "variant"),
    [(dfew, "frames"), (dfew, "original"), (mafw, "frames"), (mafw, "clips"), (ferv39k, "")],
    ids=["dfew-frames", "dfew-original", "mafw-frames", "mafw-clips", "ferv39k"],
)
def test_official_folds_manifest_then_experiment(tmp_path, tree, variant):
    """One manifest per official fold (``vidfer manifest --split-number k``; FERV39k has one
    split), then the ``official`` protocol: each fold tests exactly its split file's clips."""
    root = tmp_path / "dataset"
    case = tree(root, variant)
    numbers = tuple(FOLDS) if case.numbered else (1,)
    manifests = []
    for k in numbers:
        for split, chosen in zip(("train", "test"), FOLDS[k], strict=True):
            case.write_list(k, split, chosen)
        out = root / f"manifest_set{k}.csv"
        number = ["--split-number", str(k)] if case.numbered else []
        assert main(["manifest", str(root), *case.layout, *number, "--out", str(out)]) == 0
        manifests.append(str(out))
    protocol = {"name": "official", "manifests": manifests, "val_fraction": 0.5}
    exp = tmp_path / "exp"
    record = experiment(tiny_config(tmp_path, Path(manifests[0]), protocol), exp, case.classes)
    assert [(fold["train"] + fold["val"], fold["test"]) for fold in record["folds"]] == [
        (4, 2)
    ] * len(numbers)
    tested = [
        sorted(r.rel_path for r in read_manifest(exp / fold["run"] / "manifest.csv").split("test"))
        for fold in record["folds"]
    ]
    official = [
        sorted(case.clips[c].relative_to(root).as_posix() for c in FOLDS[k][1]) for k in numbers
    ]
    assert tested == official


# ------------------------------------------------------------------ subject-independent folds


def ckplus(root: Path) -> tuple[str, ...]:
    """Four subjects with a happy (code 5) and a sadness (code 6) sequence each."""
    subjects = ("S005", "S010", "S011", "S014")
    for index, subject in enumerate(subjects):
        for number, code, sign in (("001", 5, 1), ("002", 6, -1)):
            name = f"{subject}_{number}_{{:08d}}.png"
            folder = root / "cohn-kanade-images" / subject / number
            frames(folder, CLIP_FRAMES, name, sign, index * 2 + int(number))
            label = f"{subject}_{number}_{CLIP_FRAMES:08d}_emotion.txt"
            write(root / "Emotion" / subject / number / label, f"   {code:.7e}\n")
    return subjects


def oulu(root: Path) -> tuple[str, ...]:
    """Four persons of the VL/Strong set, each with a Happiness and a Sadness sequence."""
    persons = ("P001", "P002", "P003", "P004")
    for index, person in enumerate(persons):
        for emotion, sign in (("Happiness", 1), ("Sadness", -1)):
            folder = root / "VL" / "Strong" / person / emotion
            frames(folder, CLIP_FRAMES, "{:03d}.jpeg", sign, index * 2 + (sign < 0))
    return persons


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layout", "tree", "classes", "fps"),
    [
        ("ckplus", ckplus, ("happy", "sadness"), 30.0),
        ("oulu", oulu, ("happiness", "sadness"), 25.0),
    ],
    ids=["ckplus", "oulu"],
)
def test_subject_independent_folds_on_frame_folders(tmp_path, layout, tree, classes, fps):
    """Sequence frame folders, then ``subject_kfold``: no subject in both train and test."""
    root = tmp_path / layout
    subjects = tree(root)
    assert main(["manifest", str(root), "--layout", layout]) == 0
    manifest = read_manifest(root / "manifest.csv")
    assert manifest.classes == classes and len(manifest.rows) == 8
    assert all(row.path.is_dir() for row in manifest.rows)
    protocol = {"name": "subject_kfold", "folds": 2}
    config = tiny_config(tmp_path, root / "manifest.csv", protocol, folder_fps=fps)
    record = experiment(config, tmp_path / "exp", classes)
    assert subjects_disjoint(record, tmp_path / "exp") == list(subjects)
    # Every sequence prepared from its images at the dataset's frame rate (data.frame_folder_fps).
    entries = [p for p in (root / ".vidfer_store").rglob("*.json") if p.name != "prepare.json"]
    stored = [json.loads(entry.read_text()) for entry in entries]
    assert len(stored) == 8
    assert all(
        (s["status"], s["source_fps"], s["shape"][0]) == ("ok", fps, CLIP_FRAMES) for s in stored
    )
