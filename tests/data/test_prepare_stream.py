"""``vidfer prepare`` piece by piece: the same stored frames as the whole video decoded at once,
and memory bounded by a piece, so a video larger than ``data.limits.decode_memory_mb`` prepares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidfer.assets import asset_path, fetch_assets
from vidfer.config import DataConfig, LimitsConfig, PrepareConfig
from vidfer.data.prepare import open_store, prepare_into
from vidfer.data.prepared import load_dataset
from vidfer.data.preprocess import finish_frames
from vidfer.data.store import SourceIdentity
from vidfer.data.stream import MAX_PIECE_FRAMES, detection_frames, piece_frames_for
from vidfer.faces import FaceConfig, process_faces
from vidfer.io.video import decode, probe_source
from vidfer.io.video_probe import probe
from vidfer.io.writer import write_video

from helpers import write_frame_folder


def sliding_square(frames: int, height: int, width: int) -> np.ndarray:
    """A bright square sliding over a flat background: uint8 (T, H, W, 3), cheap to encode."""
    video = np.full((frames, height, width, 3), 40, np.uint8)
    for t in range(frames):
        left = (3 * t) % (width - 40)
        video[t, height // 3 : height // 3 + 40, left : left + 40] = 220
    return video


def test_piece_size_follows_the_memory_limit(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_video(path, sliding_square(2, 144, 176), 25.0)
    info = probe(path)
    frame_mb = 176 * 144 * 3 / 2**20
    assert piece_frames_for(info, LimitsConfig(decode_memory_mb=5)) == int(5 / 8 / frame_mb)
    assert piece_frames_for(info, LimitsConfig(decode_memory_mb=1)) == 1
    assert piece_frames_for(info, LimitsConfig(decode_memory_mb=None)) == MAX_PIECE_FRAMES
    assert piece_frames_for(info, LimitsConfig()) == MAX_PIECE_FRAMES


def test_keyframe_detection_is_called_on_a_batch_of_keyframes_where_frames_are_small() -> None:
    every = FaceConfig(detect_every=1)
    keyframes = FaceConfig()  # detect_every 16, batch_size 32
    limits = LimitsConfig()
    assert detection_frames(every, 176 * 144, limits) == 32
    assert detection_frames(keyframes, 176 * 144, limits) == 512  # 32 keyframes per call
    assert detection_frames(keyframes, 640 * 272, limits) == (1 << 24) // (640 * 272)  # 96
    assert detection_frames(keyframes, 1280 * 720, limits) == 32  # never fewer than a batch
    # Within the pieces' share of the memory limit: 8 MB / 8 holds 13 frames of 176x144.
    assert detection_frames(keyframes, 176 * 144, LimitsConfig(decode_memory_mb=8)) == 32
    assert detection_frames(keyframes, 176 * 144, LimitsConfig(decode_memory_mb=64)) == 110
    assert detection_frames(keyframes, 176 * 144, LimitsConfig(decode_memory_mb=None)) == 512


@pytest.mark.slow
def test_a_video_larger_than_the_memory_limit_prepares(tmp_path: Path) -> None:
    """600 frames of 640x480: 30 MB once resized, 550 MB decoded at full size, under a 24 MB
    allowance (the whole-video path was quarantined as out_of_memory at 96 MB)."""
    root = tmp_path / "data"
    write_video(root / "long.mp4", sliding_square(600, 480, 640), 25.0)
    (root / "manifest.csv").write_text("path,label\nlong.mp4,a\n")
    config = DataConfig.model_validate(
        {
            "manifest": root / "manifest.csv",
            "workers": 1,
            "prepare": {"size": 112, "grayscale": True},
            "limits": {"decode_memory_mb": 24},
        }
    )
    dataset = load_dataset(config)
    [item] = dataset.items
    stored = dataset.store.frames(item.key)
    whole = decode(root / "long.mp4", short_side=112).frames  # (600, 112, 149, 3)
    assert whole.nbytes > 24 * 2**20
    np.testing.assert_array_equal(stored, finish_frames(whole, config.prepare))
    assert not list(dataset.store.folder.glob(".*.tmp*"))


@pytest.mark.slow
def test_face_crops_in_pieces_equal_the_whole_video(tmp_path: Path) -> None:
    """Pieces of 8 frames (a 5 MB allowance on carphone), detector batches of 12, every frame
    detected (``detect_every: 1``, the batch semantics): the main-face track spans the pieces, so
    crops and per-frame records are those of the whole video."""
    fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"])
    path = asset_path("carphone")
    faces = {"size": 48, "missing": "interpolate", "batch_size": 12, "detect_every": 1}
    prep = PrepareConfig(max_frames=40, faces=faces)
    limits = LimitsConfig(decode_memory_mb=5)
    assert piece_frames_for(probe(path), limits) == 8
    store = open_store(tmp_path, prep)
    identity = SourceIdentity.of(path)
    record = prepare_into(store, path, identity, prep, limits)
    assert record.ok, record.reason

    video = decode(path, max_frames=40)
    faces = prep.face_config()
    found = process_faces(video.frames, faces)
    np.testing.assert_array_equal(store.frames(identity.key()), finish_frames(found.crops, prep))
    assert record.frame_indices == video.frame_indices[found.kept].tolist()
    assert record.faces == [
        {**item, "frame": int(video.frame_indices[item["frame"]])} for item in found.frames
    ]


@pytest.mark.slow
def test_keyframe_detection_in_pieces_follows_the_whole_videos_face(tmp_path: Path) -> None:
    """The default keyframe detection (``detect_every: 16``) in pieces of 8 frames: one
    detector carries the faces across the pieces, so the main face is found in the frames the
    whole video's keyframe detection finds it in, at the same place."""
    fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"])
    path = asset_path("carphone")
    prep = PrepareConfig(max_frames=40, faces={"size": 48, "missing": "interpolate"})
    assert prep.face_config() is not None and prep.face_config().detect_every > 1
    store = open_store(tmp_path, prep)
    identity = SourceIdentity.of(path)
    record = prepare_into(store, path, identity, prep, LimitsConfig(decode_memory_mb=5))
    assert record.ok, record.reason

    video = decode(path, max_frames=40)
    found = process_faces(video.frames, prep.face_config())
    assert record.frame_indices == video.frame_indices[found.kept].tolist()
    assert record.faces is not None
    streamed = np.array([item["box"] for item in record.faces], np.float64)  # (T, 4)
    whole = np.array([item["box"] for item in found.frames], np.float64)  # (T, 4)
    assert np.abs(streamed - whole).max() < 2.0  # pixels


def test_a_frame_folder_prepares_piece_by_piece(tmp_path: Path) -> None:
    """A frame folder goes through the streaming path: pieces of 1 image (a 1 MB allowance)
    store the frames of the whole folder decoded at once."""
    folder = write_frame_folder(tmp_path / "clip", sliding_square(12, 240, 320))
    prep = PrepareConfig(size=32)
    limits = LimitsConfig(decode_memory_mb=1)
    assert piece_frames_for(probe_source(folder, frame_folder_fps=10.0), limits) == 1
    store = open_store(tmp_path / "store", prep)
    identity = SourceIdentity.of(folder, folder_fps=10.0)
    record = prepare_into(store, folder, identity, prep, limits)
    assert record.ok, record.reason
    assert record.fps == 10.0 and record.source.folder_fps == 10.0
    whole = decode(folder, short_side=32, frame_folder_fps=10.0).frames  # (12, 32, 42, 3)
    np.testing.assert_array_equal(store.frames(identity.key()), finish_frames(whole, prep))


def test_a_rejected_video_leaves_no_array(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    write_video(path, sliding_square(12, 64, 96), 25.0)
    prep = PrepareConfig(size=32, min_frames=50)
    store = open_store(tmp_path / "store", prep)
    identity = SourceIdentity.of(path)
    record = prepare_into(store, path, identity, prep, LimitsConfig(decode_memory_mb=1))
    assert record.status == "too_short" and "12 frame(s)" in record.reason
    assert store.load_record(identity.key()) == record
    assert not store.frames_path(identity.key()).exists()
    assert not list(store.folder.glob(".*"))
