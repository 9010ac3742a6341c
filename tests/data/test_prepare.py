"""The prepared store: decode once, atomic entries, rejects listed, reuse on a second run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidfer.config import DataConfig
from vidfer.data import prepare as prepare_module
from vidfer.data.prepared import load_dataset
from vidfer.errors import ManifestError, VidferError

from helpers import BROKEN


def data_config(manifest, **extra) -> DataConfig:
    return DataConfig.model_validate(
        {"manifest": manifest, "prepare": {"size": 24}, "workers": 1, **extra}
    )


def test_prepare_stores_memory_mapped_frames_and_records(square_dataset):
    dataset = load_dataset(data_config(square_dataset))
    assert len(dataset.items) == 8 and dataset.result.decoded == 8
    item = dataset.items[0]
    frames = dataset.store.frames(item.key)
    assert isinstance(frames, np.memmap)
    assert frames.shape == (20, 24, 24, 3) and frames.dtype == np.uint8
    record = json.loads(dataset.store.record_path(item.key).read_text())
    assert record["status"] == "ok" and record["frame_indices"] == list(range(20))
    assert record["source_fps"] == pytest.approx(10.0)
    assert not list(dataset.store.folder.glob(".*.tmp*"))


def no_decoding(*args, **kwargs):
    """Stands for the decoding workers (``prepare_module.Sandbox``) where none may start."""
    raise AssertionError("a decoding worker was started")


def test_second_run_decodes_nothing(square_dataset, monkeypatch):
    load_dataset(data_config(square_dataset))
    monkeypatch.setattr(prepare_module, "Sandbox", no_decoding)
    again = load_dataset(data_config(square_dataset))
    assert again.result.decoded == 0
    assert len(again.items) == 8


def test_changed_settings_or_file_prepare_again(square_dataset):
    load_dataset(data_config(square_dataset))
    assert load_dataset(data_config(square_dataset, prepare={"size": 16})).result.decoded == 8
    video = square_dataset.parent / "videos/left/0.mp4"
    video.write_bytes(video.read_bytes())  # new mtime: a new identity
    assert load_dataset(data_config(square_dataset)).result.decoded == 1


def test_parallel_workers_give_the_same_frames(square_dataset, tmp_path):
    serial = load_dataset(data_config(square_dataset, store=str(tmp_path / "a")))
    parallel = load_dataset(data_config(square_dataset, store=str(tmp_path / "b"), workers=2))
    assert parallel.result.decoded == 8
    for one, two in zip(serial.items, parallel.items, strict=True):
        assert np.array_equal(serial.store.frames(one.key), parallel.store.frames(two.key))


def test_broken_files_are_rejected_and_listed(square_dataset):
    root = square_dataset.parent
    good = root / "videos/left/0.mp4"
    lines = square_dataset.read_text().splitlines()
    for name, make in BROKEN.items():
        make(root / f"{name}.mp4", good)
        lines.append(f"{name}.mp4,left,train,sx")
    lines.append("missing.mp4,left,train,sx")
    square_dataset.write_text("\n".join(lines) + "\n")
    dataset = load_dataset(data_config(square_dataset))
    assert len(dataset.items) == 8
    rejects = [
        json.loads(line)
        for line in (dataset.store.folder / "rejects.jsonl").read_text().splitlines()
    ]
    statuses = {item["path"]: item["status"] for item in rejects}
    assert statuses == {
        "empty.mp4": "empty",
        "corrupt.mp4": "corrupt",
        "no_video_stream.mp4": "no_video_stream",
        "missing.mp4": "missing",
    }
    assert all(item["reason"] and item["line"] > 1 for item in rejects)


def test_too_many_rejects_abort_with_a_clear_message(square_dataset):
    lines = square_dataset.read_text().splitlines()[:2]
    lines.append("gone.mp4,left,train,sx")
    square_dataset.write_text("\n".join(lines) + "\n")
    with pytest.raises(VidferError, match=r"1 of 2 videos rejected .*max_reject_fraction=0.4"):
        load_dataset(data_config(square_dataset, max_reject_fraction=0.4))


def test_too_short_videos_are_rejected(square_dataset):
    config = data_config(square_dataset, prepare={"size": 24, "min_frames": 30})
    with pytest.raises(VidferError, match="8 of 8 videos rejected"):
        load_dataset(config)


def test_bad_manifest_fails_before_any_decoding(square_dataset, monkeypatch):
    monkeypatch.setattr(prepare_module, "Sandbox", no_decoding)
    text = square_dataset.read_text() + "videos/left/0.mp4,up,train,s9\n"
    square_dataset.write_text(text)
    with pytest.raises(ManifestError, match=r"manifest.csv:10: duplicate path"):
        load_dataset(data_config(square_dataset))
    square_dataset.write_text(text.replace("videos/left/0.mp4,up", "../outside.mp4,up"))
    with pytest.raises(ManifestError, match=r"manifest.csv:10: path '../outside.mp4' escapes"):
        load_dataset(data_config(square_dataset))


def test_grayscale_and_segments(square_dataset):
    text = square_dataset.read_text().replace(
        "path,label,split,subject", "path,label,split,subject,start,end"
    )
    lines = text.splitlines()
    lines = [lines[0]] + [
        line + (",0.5,1.5" if i == 0 else ",,") for i, line in enumerate(lines[1:])
    ]
    square_dataset.write_text("\n".join(lines) + "\n")
    dataset = load_dataset(data_config(square_dataset, prepare={"size": 24, "grayscale": True}))
    first = dataset.store.load_record(dataset.items[0].key)
    assert first is not None and first.frame_indices == list(range(5, 15))
    frames = dataset.store.frames(dataset.items[1].key)
    assert np.array_equal(frames[..., 0], frames[..., 2])
