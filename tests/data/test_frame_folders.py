"""Preparing frame folders: the stored frames of a lossless video of the same frames; damaged,
empty and crashing folders rejected with their reason while the others go on; resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidfer.cli import main
from vidfer.config import DataConfig
from vidfer.data import prepare as prepare_module
from vidfer.data.manifest import read_manifest
from vidfer.data.prepared import load_dataset
from vidfer.io.writer import write_video

from helpers import moving_square, write_frame_folder


def data_config(manifest, **extra) -> DataConfig:
    return DataConfig.model_validate(
        {
            "manifest": manifest,
            "prepare": {"size": 24, "fps": 5.0},
            "workers": 2,
            "frame_folder_fps": 10.0,
            "max_reject_fraction": 0.8,
            **extra,
        }
    )


def write_dataset(root):
    """Two clips, each as a frame folder and as a lossless video, and three bad folders."""
    lines = ["path,label,video_id"]
    for label, direction in (("left", -1), ("right", 1)):
        frames = moving_square(direction, frames=21, size=40)[:, :, 2:]  # (21, 40, 38, 3)
        write_frame_folder(root / "folders" / label, frames)
        write_video(
            root / f"videos/{label}.mkv", frames, 10.0, codec="libx264rgb", crf=0, pix_fmt="rgb24"
        )
        lines += [f"folders/{label},{label},{label}_folder", f"videos/{label}.mkv,{label},{label}"]
    damaged = write_frame_folder(root / "bad" / "damaged", moving_square(1, frames=6))
    (damaged / "frame3.png").write_bytes((damaged / "frame3.png").read_bytes()[:100])
    (root / "bad" / "empty").mkdir()
    write_frame_folder(root / "bad" / "crashing", moving_square(1, frames=6))
    lines += [f"bad/{name},left,{name}" for name in ("damaged", "empty", "crashing")]
    lines.append("folders/left/frame1.png/x,left,under_a_file")  # a path through an image
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def no_decoding(*args, **kwargs):
    raise AssertionError("a decoding worker was started")


@pytest.mark.slow
def test_frame_folders_prepare_as_their_lossless_videos(tmp_path, monkeypatch):
    manifest = write_dataset(tmp_path)
    monkeypatch.setenv("VIDFER_FAULTS", json.dumps({"decode": {"crashing": "segv"}}))
    dataset = load_dataset(data_config(manifest))
    assert dataset.result.decoded == 7
    records = dataset.result.records
    for label in ("left", "right"):
        folder, video = records[f"{label}_folder"], records[label]
        assert folder.ok and video.ok
        assert folder.shape == video.shape == [11, 24, 24, 3]  # 10 fps -> 5 fps, 24 x 24 crops
        assert folder.frame_indices == video.frame_indices == list(range(0, 21, 2))
        assert folder.fps == video.fps == 5.0 and folder.source_fps == video.source_fps == 10.0
        stored = dataset.store.frames(folder.source.key())
        assert np.array_equal(stored, dataset.store.frames(video.source.key()))
    rejects = {item["video_id"]: item for item in dataset.rejects()}
    assert sorted(rejects) == ["crashing", "damaged", "empty", "under_a_file"]
    assert rejects["under_a_file"]["status"] == "missing"
    assert rejects["damaged"]["status"] == "undecodable"
    assert "frame3.png is not a readable image" in rejects["damaged"]["reason"]
    assert rejects["empty"]["status"] == "empty"
    assert rejects["crashing"]["status"] == "crashed"
    assert (dataset.store.folder / "rejects.jsonl").read_text().count("\n") == 4

    # Resumable: nothing decoded again; a changed image or another frame rate prepares again.
    monkeypatch.delenv("VIDFER_FAULTS")
    with monkeypatch.context() as patch:
        patch.setattr(prepare_module, "Sandbox", no_decoding)
        assert load_dataset(data_config(manifest)).result.decoded == 0
    image = tmp_path / "folders/left/frame7.png"
    image.write_bytes(image.read_bytes())  # a new modification time
    assert load_dataset(data_config(manifest)).result.decoded == 1
    again = load_dataset(data_config(manifest, frame_folder_fps=20.0))
    assert again.result.decoded == 5  # every frame folder (the crash is remembered otherwise)
    assert again.result.records["left_folder"].frame_indices == list(range(0, 21, 4))


@pytest.mark.slow
def test_folder_layout_lists_frame_folders_as_videos(tmp_path):
    """``vidfer manifest ROOT``: a class folder's sub-folders of images are videos beside its
    video files (at any depth); images directly in a class folder, a frame folder's own
    sub-folders and hidden folders are not; the rows prepare as videos."""
    for split, label, direction in (("train", "left", -1), ("test", "right", 1)):
        clips = tmp_path / split / label
        write_frame_folder(clips / "clip10", moving_square(direction, frames=6, size=24))
        write_frame_folder(clips / "clip2" / "sub", moving_square(direction, frames=6, size=24))
        write_frame_folder(clips, moving_square(direction, frames=2, size=24), ["a.png", "b.png"])
        write_video(clips / "deeper" / "v.mp4", moving_square(direction, 6, size=24), 10.0)
    write_frame_folder(tmp_path / "train" / "left" / "clip10" / "crops", moving_square(1, 2))
    (tmp_path / ".vidfer_store").mkdir()  # a store beside the manifest is not a class
    write_frame_folder(tmp_path / "test" / "right" / ".cache" / "x", moving_square(1, 2))
    assert main(["manifest", str(tmp_path)]) == 0
    manifest = read_manifest(tmp_path / "manifest.csv")
    assert [(row.rel_path, row.label, row.split) for row in manifest.rows] == [
        ("test/right/clip10", "right", "test"),
        ("test/right/clip2/sub", "right", "test"),
        ("test/right/deeper/v.mp4", "right", "test"),
        ("train/left/clip10", "left", "train"),
        ("train/left/clip2/sub", "left", "train"),
        ("train/left/deeper/v.mp4", "left", "train"),
    ]
    dataset = load_dataset(data_config(tmp_path / "manifest.csv", workers=1))
    assert [item.num_frames for item in dataset.items] == [3] * 6  # 6 frames, 10 fps -> 5 fps
