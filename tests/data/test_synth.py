"""Synthetic datasets: layout, splits, ground truth, determinism and the designed-in difficulty."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vidfer.data.synth import (
    ACTION_CLASSES,
    EXPRESSION_CLASSES,
    SCENE_ACTION_CLASSES,
    SYNTH_DATASETS,
    make_actions,
    make_expressions,
)
from vidfer.errors import ConfigError
from vidfer.io.video import decode

HEADER = ["path", "label", "split", "subject", "video_id"]


def read_rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        # The expressions also name each video's per-frame intensity file.
        assert reader.fieldnames in (HEADER, [*HEADER, "frame_labels"])
        return list(reader)


def read_truth(manifest: Path) -> dict[str, dict[str, list]]:
    lines = (manifest.parent / "intensity.jsonl").read_text().splitlines()
    return {record["video_id"]: record for record in map(json.loads, lines)}


@pytest.fixture(scope="module")
def expressions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_expressions(tmp_path_factory.mktemp("expr"), videos_per_class=3, size=48)


@pytest.fixture(scope="module")
def actions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_actions(tmp_path_factory.mktemp("act"), videos_per_class=5, size=32)


@pytest.fixture(scope="module")
def action_videos(actions: Path) -> list[tuple[str, int, np.ndarray]]:
    """``(subject, class index, frames)`` of every action video."""
    return [
        (
            row["subject"],
            ACTION_CLASSES.index(row["label"]),
            decode(actions.parent / row["path"]).frames,
        )
        for row in read_rows(actions)
    ]


@pytest.mark.parametrize(
    ("fixture", "classes", "n_subjects"),
    [("expressions", EXPRESSION_CLASSES, 3), ("actions", ACTION_CLASSES, 5)],
)
def test_layout_and_subject_disjoint_splits(
    request: pytest.FixtureRequest, fixture: str, classes: tuple[str, ...], n_subjects: int
) -> None:
    manifest: Path = request.getfixturevalue(fixture)
    assert manifest.name == "manifest.csv"
    rows = read_rows(manifest)
    assert len(rows) == n_subjects * len(classes)
    for row in rows:
        assert row["path"] == f"videos/{row['label']}/{row['video_id']}.mp4"
        assert (manifest.parent / row["path"]).is_file()
    # Every subject performs every class once, and belongs to exactly one split.
    assert Counter((r["subject"], r["label"]) for r in rows) == Counter(
        {(s, c): 1 for s in {r["subject"] for r in rows} for c in classes}
    )
    split_of = {r["subject"]: r["split"] for r in rows}
    assert all(split_of[r["subject"]] == r["split"] for r in rows)
    assert set(split_of.values()) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        assert {r["label"] for r in rows if r["split"] == split} == set(classes)
    assert len({r["video_id"] for r in rows}) == len(rows)
    assert not list(manifest.parent.glob("**/.*.tmp")), "temporary files left behind"


def test_expression_ground_truth_matches_the_videos(expressions: Path) -> None:
    rows = read_rows(expressions)
    truth = read_truth(expressions)
    assert set(truth) == {r["video_id"] for r in rows}
    occluded_videos = 0
    for row in rows:
        frames = decode(expressions.parent / row["path"]).frames
        record = truth[row["video_id"]]
        intensity = np.asarray(record["intensity"])
        assert row["frame_labels"] == f"labels/{row['video_id']}.txt"
        written = np.loadtxt(expressions.parent / row["frame_labels"])
        assert np.array_equal(written, intensity)
        occluded = np.asarray(record["occluded"])
        length = len(frames)
        assert frames.shape == (length, 48, 48, 3)
        assert 48 <= length <= 96
        assert len(intensity) == len(occluded) == length
        assert 0.15 <= np.mean(intensity == 1.0) <= 0.25
        # One window: zeros, a strictly rising onset, the plateau, a strictly falling offset.
        window = np.flatnonzero(intensity > 0)
        assert np.all(np.diff(window) == 1)
        ramps = np.diff(intensity[window[0] : window[-1] + 1])
        assert np.all(ramps[: np.argmax(ramps == 0)] > 0) and ramps[-1] < 0
        for ramp_frames in (np.sum(ramps > 0), np.sum(ramps < 0)):
            assert 0.08 * length - 1 <= ramp_frames <= 0.12 * length + 1
        if occluded.any():
            occluded_videos += 1
            stretch = np.flatnonzero(occluded)
            assert np.all(np.diff(stretch) == 1)
            assert 0.10 * length - 1 <= len(stretch) <= 0.20 * length + 1
        # The apex is visible: frames there differ more from the neutral face than frames
        # outside the window (where only blinks and the head sway change the picture).
        ref = np.median(frames[(intensity == 0) & ~occluded], axis=0)
        change = np.abs(frames.astype(float) - ref).mean(axis=(1, 2, 3))
        apex = (intensity == 1.0) & ~occluded
        if apex.any():
            assert change[apex].mean() > change[(intensity == 0) & ~occluded].mean()
    assert 0 < occluded_videos < len(rows)


def test_same_seed_same_dataset(tmp_path: Path, expressions: Path) -> None:
    again = make_expressions(tmp_path / "again", videos_per_class=3, size=48)
    assert again.read_text() == expressions.read_text()
    assert (again.parent / "intensity.jsonl").read_text() == (
        expressions.parent / "intensity.jsonl"
    ).read_text()
    first = read_rows(again)[0]["path"]
    np.testing.assert_array_equal(
        decode(again.parent / first, max_frames=1).frames,
        decode(expressions.parent / first, max_frames=1).frames,
    )
    other = make_expressions(tmp_path / "other", videos_per_class=3, size=48, seed=1)
    assert (other.parent / "intensity.jsonl").read_text() != (
        again.parent / "intensity.jsonl"
    ).read_text()


def test_registry_and_argument_checks(tmp_path: Path) -> None:
    assert set(SYNTH_DATASETS) == {"expressions", "actions"}
    assert SYNTH_DATASETS["actions"] is make_actions
    with pytest.raises(ConfigError, match="videos_per_class"):
        make_actions(tmp_path, videos_per_class=2)
    with pytest.raises(ConfigError, match="size"):
        make_expressions(tmp_path, size=33)
    assert not any(tmp_path.iterdir())


def figure_mask(frames: np.ndarray) -> np.ndarray:
    """``bool (T, H, W)``: pixels far from the frame's median colour (the background)."""
    # (T, H, W, 3) -> (T, H*W, 3) -> median colour (T, 3) -> (T, 1, 1, 3)
    background = np.median(frames.reshape(len(frames), -1, 3), axis=1)[:, None, None, :]
    return np.abs(frames.astype(np.int16) - background).max(axis=-1) > 45


def motion(frames: np.ndarray) -> np.ndarray:
    """Mean horizontal step (signed, px/frame) and mean vertical |step| of the figure."""
    mask = figure_mask(frames)
    mask &= ~mask.all(axis=0)  # not a static landmark (scenes)
    _, height, width = mask.shape
    # Circular mean of the column: the walkers wrap around the frame's edges.
    angles = np.exp(2j * np.pi * np.arange(width) / width)
    x = np.angle((mask.sum(axis=1) * angles).sum(axis=1)) * width / (2 * np.pi)
    dx = (np.diff(x) + width / 2) % width - width / 2
    y = (mask.sum(axis=2) * np.arange(height)).sum(axis=1) / np.maximum(mask.sum(axis=(1, 2)), 1)
    return np.array([dx.mean(), np.abs(np.diff(y)).mean()])


def test_action_videos_decode(action_videos: list[tuple[str, int, np.ndarray]]) -> None:
    for _, _, frames in action_videos:
        assert 32 <= len(frames) <= 48
        assert frames.shape[1:] == (32, 32, 3)


def class_mean(
    videos: list[tuple[int, np.ndarray]], label: int, features: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Mean over every row of ``features(video)`` (one row per sample) of one class."""
    return np.concatenate([features(v) for y, v in videos if y == label]).mean(axis=0)


def test_action_classes_differ_only_in_motion(
    action_videos: list[tuple[str, int, np.ndarray]],
) -> None:
    """A single frame carries no class signal; the motion between frames carries all of it.

    Both classifiers are nearest class means, scored leaving one actor out: on single frames
    the class-wise mean frames are the templates, so if those differed by class the
    classifier would beat chance (0.25). The figure's motion separates the classes.
    """
    subjects = sorted({subject for subject, _, _ in action_videos})
    classes = range(len(ACTION_CLASSES))
    frame_hits = frame_total = motion_hits = 0
    for held_out in subjects:
        train = [(y, v) for s, y, v in action_videos if s != held_out]
        test = [(y, v) for s, y, v in action_videos if s == held_out]
        mean_frames = np.stack(
            [class_mean(train, c, lambda v: v.reshape(len(v), -1)) for c in classes]
        )
        mean_motion = np.stack([class_mean(train, c, lambda v: motion(v)[None]) for c in classes])
        for label, frames in test:
            # (T, H, W, 3) -> (T, H*W*3): every frame is one sample.
            pixels = frames.reshape(len(frames), -1).astype(float)
            # (T, 1, D) - (1, K, D) -> distances (T, K)
            nearest = ((pixels[:, None, :] - mean_frames[None]) ** 2).sum(axis=-1).argmin(axis=1)
            frame_hits += int((nearest == label).sum())
            frame_total += len(frames)
            motion_hits += int(((motion(frames) - mean_motion) ** 2).sum(axis=1).argmin() == label)
    assert frame_hits / frame_total < 0.4
    assert motion_hits / len(action_videos) >= 0.9


def test_action_motion_per_class(action_videos: list[tuple[str, int, np.ndarray]]) -> None:
    by_class = {
        name: np.array([motion(v) for _, y, v in action_videos if y == index])
        for index, name in enumerate(ACTION_CLASSES)
    }
    walk_left, walk_right = by_class["walk_left"][:, 0], by_class["walk_right"][:, 0]
    run, jump = by_class["run_right"], by_class["jump"]
    assert np.all(walk_left < -0.2) and np.all(walk_right > 0.2)
    assert 0.6 < -walk_left.mean() / walk_right.mean() < 1.6  # the same speed distribution
    assert 2.0 < run[:, 0].mean() / walk_right.mean() < 4.5  # about 3x faster
    assert np.all(np.abs(jump[:, 0]) < 0.1)  # in place...
    assert jump[:, 1].min() > by_class["walk_right"][:, 1].max()  # ...bouncing
    # The figure covers the same area in every class (same appearance distribution).
    areas = [
        np.mean([figure_mask(v).mean() for _, y, v in action_videos if y == index])
        for index in range(len(ACTION_CLASSES))
    ]
    assert max(areas) / min(areas) < 1.25


def test_action_figures_stand_out_in_gray(
    action_videos: list[tuple[str, int, np.ndarray]],
) -> None:
    """A figure's gray level is far from its background's (gray-input models see it)."""
    luma = np.array([0.299, 0.587, 0.114])
    for _, _, frames in action_videos:
        mask = figure_mask(frames)
        gray = frames.astype(float) @ luma  # (T, H, W, 3) -> (T, H, W)
        assert abs(np.median(gray[mask]) - np.median(gray[~mask])) > 30


def test_scene_actions_need_appearance_and_motion(tmp_path: Path) -> None:
    """Motion splits walk from jump; a static landmark, invisible in differences, splits scenes.

    Per walking video: the landmark is the set of pixels far from the background colour in
    *every* frame (the walker moves on; a jumper's torso would stay); its outline tells a house
    (wide at the bottom) from a tree (narrow trunk under a round crown).
    """
    manifest = make_actions(tmp_path, videos_per_class=3, size=48, scenes=True)
    rows = read_rows(manifest)
    assert [r["label"] for r in rows[:4]] == list(SCENE_ACTION_CLASSES)
    for row in rows:
        frames = decode(manifest.parent / row["path"]).frames
        motion_name, scene = row["label"].split("_")
        dx = motion(frames)[0]
        assert (dx > 0.2) if motion_name == "walk" else (abs(dx) < 0.1), row["label"]
        if motion_name != "walk":
            continue
        # Landmark: off-background in every frame. (T, H, W) -> (H, W)
        landmark = figure_mask(frames).all(axis=0)
        assert landmark.sum() > 40
        rows_hit = np.flatnonzero(landmark.any(axis=1))
        bottom = landmark[rows_hit[-1] - 1].sum()  # width one row above the lowest one
        widest = landmark.sum(axis=1).max()
        # House: the wall is nearly as wide as the widest row; tree: the trunk is thin.
        assert (bottom > 0.6 * widest) == (scene == "town"), row["label"]
