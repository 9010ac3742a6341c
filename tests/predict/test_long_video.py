"""Long videos in bounded memory: decoding in pieces, scoring in overlapping chunks, and
``vidfer predict`` giving the same timeline chunked as in one pass."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidfer.assets import asset_path
from vidfer.config import EvalConfig, load_config
from vidfer.evaluation.scoring import min_chunk_frames, score_stream, score_video
from vidfer.io.video import decode, decode_chunks
from vidfer.io.writer import write_video
from vidfer.models import build_model
from vidfer.pipelines import evaluate_run, train
from vidfer.predict import FER_PIECE_FRAMES, predict_video

from helpers import moving_square, vidfer_forked, write_square_dataset


def test_decode_chunks_are_decode_in_pieces(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, moving_square(1, frames=23), 10.0)
    whole = decode(path, fps=7.0, short_side=24)
    pieces = list(decode_chunks(path, 5, fps=7.0, short_side=24))
    assert [len(piece.frames) for piece in pieces] == [5, 5, 5, 1]  # 16 of 23 frames kept
    assert np.array_equal(np.concatenate([piece.frames for piece in pieces]), whole.frames)
    assert np.array_equal(
        np.concatenate([piece.frame_indices for piece in pieces]), whole.frame_indices
    )
    capped = list(decode_chunks(path, 4, max_frames=6))
    assert [len(piece.frames) for piece in capped] == [4, 2]


@pytest.mark.parametrize(
    ("params", "frames"),
    [({"temporal_padding": False}, 90), ({}, 90), ({"temporal_stride": 2}, 150)],
    ids=["valid", "padded", "strided"],
)
def test_chunked_score_map_equals_one_pass(params, frames):
    torch.manual_seed(0)
    model = build_model("resnet3d_18", num_classes=3, width=0.125, **params).eval()
    clip = torch.randn(3, frames, 16, 16)
    lengths: list[int] = []
    model.register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[2]))
    one_pass = score_video(model, clip, EvalConfig(chunk_frames=None))
    assert lengths == [frames]
    lengths.clear()
    # chunk_frames=1 is raised to the model's minimum; blocks of 13 frames arrive one by one.
    chunked = score_stream(model, clip.split(13, dim=1), EvalConfig(chunk_frames=1))
    assert len(lengths) >= 3 and max(lengths) <= min_chunk_frames(model.geometry)
    assert torch.allclose(chunked.scores, one_pass.scores, atol=1e-5, rtol=0)
    assert np.array_equal(chunked.centres, one_pass.centres)
    assert torch.allclose(chunked.per_frame(frames), one_pass.per_frame(frames), atol=1e-5)


@pytest.mark.parametrize("frames", [30, 5])
def test_streamed_windows_are_every_window(frames):
    torch.manual_seed(0)
    model = build_model("c3d", num_classes=2, width=0.0625, in_size=32).eval()
    clip = torch.randn(3, frames, 32, 32)
    config = EvalConfig(mode="windows", clip_len=16, stride=6, batch_size=2)
    scored = score_stream(model, clip.split(7, dim=1), config)
    if frames >= 16:
        starts = range(0, frames - 16 + 1, 6)
        windows = [clip[:, s : s + 16] for s in starts]
        centres = [s + 7.5 for s in starts]
    else:  # one window, the video centred, edge frames repeated
        indices = np.clip(np.arange(16) - 5, 0, frames - 1)
        windows, centres = [clip[:, torch.as_tensor(indices)]], [float(indices.mean())]
    with torch.no_grad():
        expected = torch.cat([model(w.unsqueeze(0)).mean(dim=2) for w in windows]).T  # (K, n)
    assert torch.allclose(scored.scores, expected, atol=1e-5)
    assert scored.centres.tolist() == centres


def _probabilities(folder: Path) -> np.ndarray:
    with open(folder / "timeline.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = [name for name in rows[0] if name.startswith("p_")]
    return np.array([[float(row[name]) for name in columns] for row in rows])


@pytest.mark.slow
def test_predict_in_chunks_equals_one_pass(tmp_path):
    manifest = write_square_dataset(tmp_path / "squares", per_class=2)
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {"clip_len": 8},
        "transforms": {"size": 24},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "train": {"epochs": 1, "batch_size": 2},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    run = train(load_config(tmp_path / "run.yaml"), tmp_path / "run").run
    video = tmp_path / "long.mp4"
    write_video(video, moving_square(1, frames=120, size=40), 10.0)
    one = predict_video(video, tmp_path / "one", run.folder, chunk_frames=10**6)
    chunked = predict_video(video, tmp_path / "chunked", run.folder, chunk_frames=40)
    assert one.status == chunked.status == "ok" and one.label == chunked.label
    assert np.allclose(
        _probabilities(tmp_path / "chunked"), _probabilities(tmp_path / "one"), atol=1e-5
    )
    assert chunked.probabilities == pytest.approx(one.probabilities, abs=1e-5)
    summary = json.loads((tmp_path / "chunked" / "summary.json").read_text())
    assert summary["frames_scored"] == summary["frames_decoded"] == 120
    assert len(summary["clip_weights"]) == 120
    # A video of the run's data: the video probabilities evaluation gives it.
    evaluate_run(run.folder, "train")
    with open(run.folder / "eval_train" / "predictions.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    path = manifest.parent / f"{row['video_id']}.mp4"
    seen = predict_video(path, tmp_path / "seen", run.folder)
    written = [float(value) for name, value in row.items() if name.startswith("p_")]
    assert list(seen.probabilities.values()) == pytest.approx(written, abs=1e-5)


@pytest.mark.slow
def test_default_face_model_in_chunks_equals_one_pass(carphone_prediction, tmp_path):
    # One pass: ``vidfer predict CARPHONE`` with the default 256-frame pieces (120 frames), run
    # once per session (conftest.py) and shared with test_face_prepare_predict.
    one_folder, _ = carphone_prediction
    one = json.loads((one_folder / "summary.json").read_text())
    assert one["frames_decoded"] == 120 <= FER_PIECE_FRAMES  # decoded and scored in one piece
    video = asset_path("carphone")
    # The same command in pieces of 32 frames, run as the fixture's (a fork of a test process:
    # the same torch threads, whose number moves landmarks by float rounding).
    result = vidfer_forked(
        "predict", str(video), "--out", str(tmp_path / "chunked"), "--chunk-frames", "32"
    )
    assert result.returncode == 0, result.stderr
    chunked = json.loads((tmp_path / "chunked" / "summary.json").read_text())
    assert one["status"] == chunked["status"] == "ok" and one["label"] == chunked["label"]
    one_rows = (one_folder / "timeline.csv").read_text().splitlines()
    chunked_rows = (tmp_path / "chunked" / "timeline.csv").read_text().splitlines()
    assert len(chunked_rows) == 121 and chunked_rows == one_rows  # header + every frame
