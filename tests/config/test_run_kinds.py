"""A run config's kind: derived from its section, checked against the sections it reads."""

from __future__ import annotations

import pytest
import yaml

from vidfer.config import RunConfig, config_to_dict, load_config, parse_config
from vidfer.errors import ConfigError

DATA = {"manifest": "/data/manifest.csv"}
FRAMES = {"extractors": [{"cnn": "mini_xception"}], "classifier": {"name": "linear_svm"}}


def test_the_kind_follows_from_the_section() -> None:
    assert parse_config({"data": DATA}).kind == "clip"
    assert parse_config({"data": DATA, "frames": FRAMES}).kind == "frames"
    assert parse_config({"data": DATA, "kind": "frames", "frames": FRAMES}).kind == "frames"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"kind": "frames"},
            "option 'kind': 'frames' needs a 'frames' section; the config has none",
        ),
        (
            {"kind": "clip", "frames": FRAMES},
            "option 'kind': 'clip' needs no frames, sparse_ae or activity",
        ),
        ({"frames": FRAMES, "sampler": {"clip_len": 8}}, "section 'sampler' does not apply"),
        ({"frames": FRAMES, "model": {"name": "c3d"}}, "section 'model' does not apply"),
        ({"kind": "sparse"}, "option 'kind'"),
    ],
)
def test_sections_that_do_not_fit_the_kind_are_named(extra: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"data": DATA, **extra}, source="cfg.yaml")


def test_a_section_left_at_its_defaults_is_accepted() -> None:
    """Run folders written before kinds hold every section, at its defaults where unused."""
    old = RunConfig.model_validate({"data": DATA, "frames": FRAMES}).model_dump(mode="json")
    old.pop("kind")
    assert "sampler" in old and "model" in old
    assert parse_config(old).kind == "frames"


def test_run_folders_keep_the_sections_their_kind_reads(tmp_path) -> None:
    config = parse_config({"data": DATA, "frames": FRAMES})
    saved = config_to_dict(config)
    assert saved["kind"] == "frames"
    assert not {"sampler", "transforms", "model", "pooling"} & set(saved)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(saved))
    assert config_to_dict(load_config(path)) == saved


def test_eval_clip_len_follows_the_sampler_unless_given() -> None:
    assert parse_config({"data": DATA, "sampler": {"clip_len": 8}}).eval.clip_len == 8
    given = {"data": DATA, "sampler": {"clip_len": 8}, "eval": {"clip_len": 12}}
    assert parse_config(given).eval.clip_len == 12
    assert parse_config({"data": DATA}).eval.clip_len == 16
