"""A feature-level clip model (``model.pooling_level: feature``) trained, evaluated and used by
``vidfer predict`` on the tiny square dataset: every way of scoring a video gives one score, the
classifier of the video's averaged features."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidfer.config import load_config
from vidfer.data.prepared import load_dataset
from vidfer.data.transforms import build_clip_transform
from vidfer.io.run_folder import RunDir
from vidfer.models.heads import ConvHead
from vidfer.models.trained import load_run_model
from vidfer.pipelines import evaluate_run, train
from vidfer.predict import predict_video


def _probabilities(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["video_id"]: np.array([float(v) for k, v in row.items() if k.startswith("p_")])
        for row in rows
    }


@pytest.mark.slow
def test_feature_level_pooling_trains_evaluates_and_predicts(square_dataset, tmp_path):
    config = {
        "seed": 1,
        "data": {"manifest": str(square_dataset), "prepare": {"size": 16}, "workers": 1},
        "sampler": {"clip_len": 12},
        "transforms": {"size": 16},
        "model": {
            "name": "mc3_18",
            "params": {"width": 0.125, "temporal_padding": False, "dropout_features": 0.2},
            "pooling_level": "feature",
        },
        "train": {"epochs": 2, "batch_size": 2},
        "eval": {"chunk_frames": 13},  # 20-frame videos in chunks (11-frame receptive field)
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    run_folder = tmp_path / "run"
    result = train(load_config(tmp_path / "run.yaml"), run_folder)
    assert result.epochs == 2
    for line in result.metrics:
        assert all(value == value for value in line.values())  # no NaN
    run = RunDir(run_folder)
    assert run.config().model.pooling_level == "feature"  # recorded in the run folder
    written = _probabilities(run_folder / "eval_test" / "predictions.csv")
    assert len(written) == 2

    # The trained model pools the features of a clip: one score per clip.
    model, _ = load_run_model(run)
    assert {m.level for m in model.modules() if isinstance(m, ConvHead)} == {"feature"}
    # Each test video's probabilities are those of the classifier of its averaged features
    # (one pass over the whole stored video), though evaluation read it in chunks.
    data = load_dataset(run.config().data)
    transform = build_clip_transform(run.config().transforms, train=False)
    head = next(m for m in model.modules() if isinstance(m, ConvHead))
    with torch.no_grad():
        for item in data.split("test"):
            clip = transform(data.store.frames(item.key)).unsqueeze(0)  # (1, C, T, S, S)
            one_score = model(clip)  # (1, K, 1): the features of the whole video averaged
            assert one_score.shape[-1] == 1
            features = model.forward_features(clip).mean(dim=(2, 3, 4), keepdim=True)
            assert torch.allclose(head.classifier(features).flatten(), one_score.flatten())
            expected = one_score.flatten().softmax(dim=0).numpy()
            np.testing.assert_allclose(written[item.row.video_id], expected, atol=1e-5)

    # Evaluating the run folder again, and predicting a new video piece by piece, agree.
    (run_folder / "eval_test").rename(run_folder / "eval_test_at_training")
    evaluate_run(run_folder, "test")
    again = _probabilities(run_folder / "eval_test" / "predictions.csv")
    for video_id, probabilities in written.items():
        np.testing.assert_allclose(again[video_id], probabilities, atol=1e-6)
    with square_dataset.open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["split"] == "test")
    video_id = Path(row["path"]).with_suffix("").as_posix()
    prediction = predict_video(square_dataset.parent / row["path"], tmp_path / "pred", run_folder)
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert summary["status"] == "ok"
    got = np.array(list(prediction.probabilities.values()))
    np.testing.assert_allclose(got, written[video_id], atol=1e-4)
    assert len(summary["clip_weights"]) == 20 - 11 + 1  # a score per step: the timeline's
