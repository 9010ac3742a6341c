"""Whole-video scoring: dense one-pass vs sliding windows, and mapping steps back to frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidfer.config import EvalConfig
from vidfer.evaluation.metrics import classification_metrics
from vidfer.evaluation.scoring import ScoreMap, score_video
from vidfer.models import build_model


@pytest.fixture(scope="module")
def valid_model():
    torch.manual_seed(0)
    return build_model("resnet3d_18", num_classes=3, width=0.125, temporal_padding=False).eval()


def test_dense_score_map_of_a_valid_model_equals_windows(valid_model):
    clip = torch.randn(3, 40, 24, 24)
    dense = score_video(valid_model, clip, EvalConfig(mode="dense"))
    windows = score_video(valid_model, clip, EvalConfig(mode="windows", clip_len=35, stride=1))
    assert dense.scores.shape == windows.scores.shape == (3, 6)
    assert torch.allclose(dense.scores, windows.scores, atol=1e-4)
    assert np.allclose(dense.centres, windows.centres)
    assert dense.centres.tolist() == [17, 18, 19, 20, 21, 22]


def test_a_video_shorter_than_the_receptive_field_is_padded(valid_model):
    scored = score_video(valid_model, torch.randn(3, 10, 24, 24), EvalConfig(mode="dense"))
    assert scored.scores.shape == (3, 1)
    assert 0 <= scored.centres[0] <= 9


def test_window_stride_and_per_frame_mapping(valid_model):
    clip = torch.randn(3, 12, 24, 24)
    padded = build_model("resnet3d_18", num_classes=3, width=0.125).eval()
    scored = score_video(padded, clip, EvalConfig(mode="windows", clip_len=4, stride=4))
    assert scored.scores.shape == (3, 3) and scored.centres.tolist() == [1.5, 5.5, 9.5]
    per_frame = scored.per_frame(12)
    assert per_frame.shape == (3, 12)
    assert torch.equal(per_frame[:, 0], scored.scores[:, 0])
    assert torch.equal(per_frame[:, 11], scored.scores[:, 2])


def test_per_frame_takes_the_nearest_step():
    score_map = ScoreMap(scores=torch.tensor([[0.0, 1.0, 2.0]]), centres=np.array([0.0, 4, 8]))
    assert score_map.per_frame(9).tolist() == [[0, 0, 0, 1, 1, 1, 1, 2, 2]]


def test_metrics_on_a_hand_made_example():
    metrics = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert metrics["mean_class_accuracy"] == pytest.approx(0.5)
    assert metrics["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    absent = classification_metrics([0, 0], [0, 1], ["a", "b"])
    assert absent["per_class_accuracy"]["b"] is None
    assert absent["mean_class_accuracy"] == pytest.approx(0.5)
