"""Random and mutated configs: each is accepted or rejected with one ConfigError naming the option.

Two generators: every shipped config with one mutation at a random place (a wrong type, a huge
number, NaN, an unknown key, a deleted key, a foreign kind, deeper nesting), and every option of
every registered builder (models, poolings, samplers, attentions) set to a wrong value.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidfer.data.sampler_zoo
import vidfer.models  # noqa: F401  (registers the models, poolings and attentions)
from vidfer.config import parse_config
from vidfer.errors import ConfigError
from vidfer.registry import ATTENTIONS, MODELS, POOLINGS, SAMPLERS, Registry

from helpers import CONFIGS

SHIPPED = [yaml.safe_load(path.read_text()) for path in sorted(CONFIGS.glob("*.yaml"))]

WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([-1, 0, 10**30, -(10**30), 1e308, float("nan"), float("inf"), 3.5]),
    st.text(max_size=8),
    st.just("x" * 10_000),
    st.lists(st.integers(), max_size=3),
    st.recursive(st.integers(), lambda inner: st.dictionaries(st.text(max_size=3), inner)),
)
"""Values a user (or a bad merge) could put anywhere in a config."""

KINDS = st.sampled_from(["clip", "frames", "sparse_ae", "activity", "nope", 3, None])


def places(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value in a parsed YAML tree (keys and list indices)."""
    if path:
        yield path
    if isinstance(node, dict | list):
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            yield from places(child, (*path, key))


def mutate(raw: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> None:
    """Apply one mutation at ``path`` of ``raw`` in place."""
    parent: Any = raw
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "set":
        parent[key] = value
    elif how == "nest":
        parent[key] = {"deeper": {"still": parent[key]}}
    elif how == "rename" and isinstance(parent, dict):
        parent[f"{key}_typo"] = parent.pop(key)
    elif how == "delete" and isinstance(parent, dict):
        del parent[key]
    else:  # a list item cannot be renamed or deleted by key: replace it
        parent[key] = value


def assert_accepted_or_named(raw: object) -> None:
    """Parse ``raw``: a config, or one single-line ConfigError naming an option or section."""
    try:
        parse_config(raw, source="fuzz.yaml")
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message, message
        assert message.startswith("fuzz.yaml: "), message
        assert "option '" in message or "section '" in message, message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(SHIPPED))),
    st.data(),
    st.sampled_from(["set", "set", "nest", "rename", "delete"]),
    WRONG,
)
def test_mutated_shipped_configs_fail_with_one_named_error(index, data, how, value):
    raw = copy.deepcopy(SHIPPED[index])
    path = data.draw(st.sampled_from(list(places(raw))))
    mutate(raw, path, how, value)
    assert_accepted_or_named(raw)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(range(len(SHIPPED))), KINDS, st.text(max_size=5), WRONG)
def test_foreign_kinds_and_unknown_sections(index, kind, section, value):
    raw = copy.deepcopy(SHIPPED[index])
    raw["kind"] = kind
    raw.setdefault(section or "extra", value)
    assert_accepted_or_named(raw)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=30, max_value=200))
def test_deep_nesting_is_a_config_error(depth):
    tree: Any = 1
    for _ in range(depth):
        tree = {"a": tree}
    assert_accepted_or_named({**SHIPPED[0], "model": {"name": "c3d", "params": tree}})
    with pytest.raises(ConfigError, match=r"option 'train\.epochs'"):
        parse_config({**SHIPPED[0], "train": tree | {"epochs": tree}}, source="fuzz.yaml")


REQUIRED = {"num_classes": 3, "channels": 8}
"""What the data gives a builder, not the config (a model's classes, an attention's channels)."""
BUILDER_OPTIONS = [
    (registry, name, option)
    for registry in (MODELS, POOLINGS, SAMPLERS, ATTENTIONS)
    for name in registry.names()
    for option in registry.option_names(name)
    if option not in REQUIRED
]
"""Every config option of every registered builder, e.g. ``(MODELS, "c3d", "in_size")``."""
SMALL = {"width": 0.125}
"""Keeps a model that is built (a valid value) small."""

BAD_OPTION_VALUES = st.one_of(
    st.none(),
    st.sampled_from([10**30, -(10**30), float("nan"), float("inf"), "zz", "", [], {}, [1, "a"]]),
)
"""Wrong types and sizes no builder can take (a valid value only builds the family)."""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("registry", "name", "option"),
    BUILDER_OPTIONS,
    ids=[f"{registry.kind}-{name}-{option}" for registry, name, option in BUILDER_OPTIONS],
)
@settings(max_examples=6, deadline=None)
@given(value=BAD_OPTION_VALUES)
def test_every_builder_option_rejects_wrong_values_by_name(
    registry: Registry[Any], name: str, option: str, value: Any
) -> None:
    takes = registry.option_names(name)
    options = {key: given for key, given in (REQUIRED | SMALL).items() if key in takes}
    options[option] = value
    try:
        registry.build(name, **options)
    except ConfigError as error:
        assert "\n" not in str(error)
        assert option in str(error) or name in str(error), str(error)
