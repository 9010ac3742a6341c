"""Every shipped config validates and builds its model (a named weights entry is checked to be
one of the family's, not read: no machine that tests can fetch it)."""

from __future__ import annotations

import pytest

from vidfer.config import load_config
from vidfer.data.sampler_zoo import sampler_from_config
from vidfer.models import build_pooling, model_from_config
from vidfer.models.weights import published_names

from helpers import CONFIGS as SHIPPED

CONFIGS = sorted(SHIPPED.glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[path.name for path in CONFIGS])
def test_config_is_valid(path):
    config = load_config(path)
    weights = config.model.weights
    assert weights is None or weights in published_names(config.model.name)
    model_from_config(config.model.model_copy(update={"weights": None}), num_classes=4)
    build_pooling(config.pooling.name, num_classes=4, **config.pooling.params)
    sampler_from_config(config.sampler)
    if config.eval.pooling is not None:
        assert not list(
            build_pooling(config.eval.pooling.name, **config.eval.pooling.params).parameters()
        )


def test_there_are_configs():
    assert CONFIGS
