"""Feature- vs score-level temporal pooling (``model.pooling_level``) on whole videos."""

from __future__ import annotations

import pytest
import torch

from vidfer.config import EvalConfig, ModelConfig
from vidfer.errors import ConfigError
from vidfer.evaluation.scoring import score_video, video_logits
from vidfer.models import TemporalAvgPool, model_from_config
from vidfer.models.base import VideoModel
from vidfer.models.heads import ConvHead

K = 3


@pytest.fixture(scope="module")
def feature_level() -> VideoModel:
    """A dense unpadded MC3 (11-frame receptive field) whose head pools features over time."""
    torch.manual_seed(0)
    section = ModelConfig(
        name="mc3_18", params={"width": 0.125, "temporal_padding": False}, pooling_level="feature"
    )
    model = model_from_config(section, K).eval()
    with torch.no_grad():  # scores large enough that a mismatch cannot hide in them
        torch.nn.init.normal_(model.head_parameters()[0], std=1.0)
    return model


def _classify_mean_features(model: VideoModel, clip: torch.Tensor) -> torch.Tensor:
    """The classifier of the features averaged over time and space: ``(K,)``."""
    features = model.forward_features(clip.unsqueeze(0))  # (1, F, T', H', W')
    mean = features.mean(dim=(2, 3, 4), keepdim=True)  # (1, F, 1, 1, 1)
    head = next(m for m in model.modules() if isinstance(m, ConvHead))
    return head.classifier(mean).flatten()  # (1, K, 1, 1, 1) -> (K,)


def test_the_config_sets_every_head_and_a_clip_gets_one_score(feature_level: VideoModel) -> None:
    heads = [m for m in feature_level.modules() if isinstance(m, ConvHead)]
    assert [head.level for head in heads] == ["feature"]
    with torch.no_grad():
        assert feature_level(torch.randn(2, 3, 16, 32, 32)).shape == (2, K, 1)


@torch.no_grad()
def test_chunked_dense_scoring_pools_the_features_of_the_whole_video(
    feature_level: VideoModel,
) -> None:
    """One pass and chunks (13 frames: the shortest) give the classifier of the video's averaged
    features, and a map of one score per step (each step keeps its frame)."""
    clip = torch.randn(3, 40, 32, 32)
    expected = _classify_mean_features(feature_level, clip)
    pooling = TemporalAvgPool()
    for chunk_frames in (None, 13, 20):
        scored = score_video(feature_level, clip, EvalConfig(chunk_frames=chunk_frames))
        assert scored.scores.shape == (K, 40 - 11 + 1)
        assert scored.centres.tolist() == [5 + step for step in range(30)]
        difference = (video_logits(scored, pooling) - expected).abs().max().item()
        assert difference <= 1e-4, (chunk_frames, difference)
    heads = [m for m in feature_level.modules() if isinstance(m, ConvHead)]
    assert [head.level for head in heads] == ["feature"]  # restored after scoring


@torch.no_grad()
def test_windows_pool_the_features_of_each_window(feature_level: VideoModel) -> None:
    clip = torch.randn(3, 30, 32, 32)
    scored = score_video(feature_level, clip, EvalConfig(mode="windows", clip_len=16, stride=7))
    assert scored.scores.shape == (K, 3)  # windows at 0, 7 and 14
    for index, start in enumerate((0, 7, 14)):
        alone = feature_level(clip[:, start : start + 16].unsqueeze(0))  # (1, K, 1): one score
        assert torch.allclose(scored.scores[:, index], alone[0, :, 0], atol=1e-4)


def test_a_model_without_the_1x1x1_head_refuses_feature_level() -> None:
    section = ModelConfig(name="fstcn", params={"width": 0.0625}, pooling_level="feature")
    with pytest.raises(ConfigError, match=r"model.pooling_level 'feature' .* 'fstcn'"):
        model_from_config(section, K)
