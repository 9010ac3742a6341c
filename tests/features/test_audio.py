"""The audio modality: IS10 features of real videos, and through train, evaluate, predict, fuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidfer.assets import asset_path
from vidfer.config import parse_config
from vidfer.errors import ConfigError, CorruptVideoError
from vidfer.features.audio import IS10_SIZE, RATE, audio_features, audio_signal
from vidfer.fusion.fuse import FusionSpec, fuse_runs
from vidfer.pipelines import evaluate_run, train
from vidfer.predict import predict_video

from helpers import moving_square, write_video_with_tone


def test_a_video_with_sound_gives_1582_finite_features() -> None:
    path = asset_path("bigbuckbunny")
    signal = audio_signal(path)
    assert signal is not None and signal.dtype == np.float32
    assert 5.0 < len(signal) / RATE < 6.0  # 132 frames at 25 fps: 5.3 s
    assert 0 < np.abs(signal).max() <= 1.0
    found = audio_features(path)
    assert found.status == "ok" and found.features is not None
    assert found.features.shape == (IS10_SIZE,) and np.isfinite(found.features).all()
    assert found.features.std() > 0


def test_a_video_without_sound_is_a_missing_modality(tmp_path: Path) -> None:
    found = audio_features(asset_path("carphone"))
    assert (found.status, found.features) == ("no_audio", None)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(CorruptVideoError, match=r"broken\.mp4"):
        audio_features(broken)


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Classes low/high: a 300 or 1200 Hz tone under the same moving-square video; train, val
    and test videos of each, and one more test video without sound."""
    root = tmp_path_factory.mktemp("tones")
    lines = ["path,label,split,subject"]
    number = 0
    for label, hz in (("low", 300.0), ("high", 1200.0)):
        for split in ("train", "train", "train", "val", "test"):
            number += 1
            rel = f"videos/{label}/{number}.mp4"
            tone = hz * (1 + 0.05 * (number % 3))  # a little pitch variation
            write_video_with_tone(root / rel, moving_square(1, 25, seed=number), 25.0, tone, number)
            lines.append(f"{rel},{label},{split},s{number}")
    write_video_with_tone(root / "videos/high/silent.mp4", moving_square(1, 25), 25.0, None)
    lines.append("videos/high/silent.mp4,high,test,s99")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def audio_config(manifest: Path) -> dict[str, Any]:
    return {
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "frames": {
            "extractors": [{"audio": "is10"}],
            "pca": 3,
            "classifier": {"name": "rbf_svm"},
        },
    }


def test_audio_modality_through_train_evaluate_predict_and_fuse(
    tones: Path, tmp_path: Path
) -> None:
    run = tmp_path / "audio"
    train(parse_config(audio_config(tones)), run)
    metrics = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert metrics["count"] == 2 and metrics["accuracy"] == 1.0  # the silent video is left out
    missing = (run / "eval_test" / "missing.csv").read_text().splitlines()
    assert missing == ["video_id,reason", "videos/high/silent,no_audio"]
    assert (run / "eval_val" / "missing.csv").read_text() == "video_id,reason\n"
    written = (run / "eval_test" / "predictions.csv").read_text()
    evaluate_run(run, "test")
    assert (run / "eval_test" / "predictions.csv").read_text() == written
    # A new video without sound: a status, no made-up label.
    silent = predict_video(tones.parent / "videos/high/silent.mp4", tmp_path / "p1", run)
    assert (silent.status, silent.label) == ("no_audio", None)
    loud = predict_video(tones.parent / "videos/low/5.mp4", tmp_path / "p2", run)
    assert loud.label == "low"
    # Fused with a run that sees every video: the silent one is scored by that run alone.
    other = audio_config(tones)
    other["frames"] = {
        "extractors": [{"cnn": "mini_xception", "layer": "features"}],
        "classifier": {"name": "linear_svm"},
    }
    train(parse_config(other), tmp_path / "video")
    fused = fuse_runs(FusionSpec(runs=[run, tmp_path / "video"], method="mean"), tmp_path / "fused")
    assert fused["test"]["fusion (mean)"]["count"] == 3
    bad = audio_config(tones)
    bad["frames"]["pca"] = 7
    with pytest.raises(ConfigError, match="pca: 7 components from 6 training videos"):
        train(parse_config(bad), tmp_path / "bad")
