"""Classifier heads: score-level and feature-level temporal pooling."""

from __future__ import annotations

import pytest
import torch

from vidfer.config import AttentionConfig, ModelConfig
from vidfer.errors import ConfigError
from vidfer.models import ConvHead, build_pooling, model_from_config
from vidfer.registry import MODELS

FEATURES, CLASSES = 6, 3


def make_heads(spatial_pool: str) -> tuple[ConvHead, ConvHead]:
    """A score-level and a feature-level head with the same random classifier, in eval mode."""
    torch.manual_seed(0)
    score = ConvHead(FEATURES, CLASSES, spatial_pool=spatial_pool, dropout=0.5)
    feature = ConvHead(FEATURES, CLASSES, spatial_pool=spatial_pool, dropout=0.5, level="feature")
    assert score.classifier.bias is not None
    with torch.no_grad():
        score.classifier.weight.normal_()  # (K, F, 1, 1, 1): larger than the default init
        score.classifier.bias.uniform_(-1.0, 1.0)
    feature.load_state_dict(score.state_dict())
    return score.eval(), feature.eval()


@pytest.mark.parametrize("spatial_pool", ["avg", "max"])
def test_feature_level_equals_score_level_average_pooling(spatial_pool: str) -> None:
    score_head, feature_head = make_heads(spatial_pool)
    features = torch.randn(2, FEATURES, 4, 3, 3)  # (B, F, T', H', W')
    score_map = score_head(features)
    feature_map = feature_head(features)
    assert score_map.shape == (2, CLASSES, 4)
    assert feature_map.shape == (2, CLASSES, 1)
    # The classifier is linear: the mean of its scores is its score of the mean features.
    pooled = build_pooling("avg")(score_map)  # (B, K)
    torch.testing.assert_close(feature_map[:, :, 0], pooled, atol=1e-5, rtol=0.0)


@pytest.mark.parametrize("name", ["avg", "max", "softmax"])
def test_temporal_pooling_of_a_feature_level_map_is_the_identity(name: str) -> None:
    _, feature_head = make_heads("avg")
    feature_map = feature_head(torch.randn(2, FEATURES, 5, 2, 2))  # (B, K, 1)
    torch.testing.assert_close(build_pooling(name)(feature_map), feature_map[:, :, 0])


def test_two_step_pooling_is_spatial_max_then_temporal_average_of_scores() -> None:
    score_head, _ = make_heads("max")
    features = torch.randn(2, FEATURES, 4, 3, 3)  # (B, F, T', H', W')
    spatial_max = features.amax(dim=(3, 4))  # (B, F, T')
    weight = score_head.classifier.weight.flatten(1)  # (K, F, 1, 1, 1) -> (K, F)
    bias = score_head.classifier.bias
    assert bias is not None
    by_hand = torch.einsum("kf,bft->bkt", weight, spatial_max) + bias.view(1, -1, 1)  # (B, K, T')
    pooled = build_pooling("avg")(score_head(features))
    torch.testing.assert_close(pooled, by_hand.mean(dim=2), atol=1e-5, rtol=0.0)


def test_invalid_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="level='clip'"):
        ConvHead(FEATURES, CLASSES, level="clip")


TINY_TRANSFORMER = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 16,
}
"""A small Hugging Face video encoder (VideoMAE, TimeSformer)."""

# Every clip family with the 1x1x1 head: options for a small model, clip frames and size.
FAMILIES: dict[str, tuple[dict[str, object], int, int]] = {
    "c3d": ({"width": 0.0625, "in_size": 32}, 32, 32),
    "i3d_mini_xception": ({}, 8, 48),
    "i3d_vgg16": ({"width": 0.0625}, 8, 32),
    "mc3_18": ({"width": 0.125}, 8, 32),
    "mvit_v2_s": ({}, 16, 224),
    "r2plus1d_18": ({"width": 0.125}, 8, 32),
    "resnet3d_18": ({"width": 0.125}, 8, 32),
    "resnext3d_101": ({"width": 0.0625}, 8, 32),
    "s3d": ({"clip_len": 8, "in_size": 32}, 16, 32),
    "swin3d_t": ({"clip_len": 2, "in_size": 32}, 4, 32),
    "timesformer": ({"architecture": {**TINY_TRANSFORMER, "num_frames": 2}}, 4, 32),
    "videomae": ({"architecture": {**TINY_TRANSFORMER, "num_frames": 4}}, 8, 32),
}


def test_every_family_is_covered() -> None:
    assert set(FAMILIES) | {"fstcn"} == set(MODELS.names())  # fstcn: no 1x1x1 head


@pytest.mark.parametrize("attention", [None, "mask"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_model_pooling_level_feature_gives_every_family_one_score_per_clip(
    name: str, attention: str | None
) -> None:
    params, frames, size = FAMILIES[name]
    section = ModelConfig(
        name=name,
        params=params,
        pooling_level="feature",
        attention=None if attention is None else AttentionConfig(name=attention),
    )
    with torch.device("meta"):  # shapes only
        model = model_from_config(section, CLASSES).eval()
        scores = model(torch.zeros(2, 3, frames, size, size))
    assert scores.shape == (2, CLASSES, 1)
    assert {m.level for m in model.modules() if isinstance(m, ConvHead)} == {"feature"}
