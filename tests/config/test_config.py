"""Config validation: typos and wrong types fail early, naming the option."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vidfer.config import load_config, parse_config
from vidfer.errors import ConfigError


def write(tmp_path, data) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_minimal_config_resolves_paths_relative_to_the_file(tmp_path):
    config = load_config(write(tmp_path, {"data": {"manifest": "data/m.csv"}}))
    assert config.data.manifest == tmp_path / "data" / "m.csv"
    assert config.data.store_root == tmp_path / "data" / ".vidfer_store"
    assert config.model.name == "resnet3d_18" and config.train.epochs == 20


def test_a_config_named_relative_to_the_working_folder_gives_absolute_paths(
    tmp_path, monkeypatch
):
    """``vidfer train configs/x.yaml`` then ``vidfer evaluate runs/x``: the run folder records
    the resolved config, read from another folder, so its paths must not depend on the cwd."""
    (tmp_path / "configs").mkdir()
    write(tmp_path / "configs", {"data": {"manifest": "../data/m.csv"}})
    monkeypatch.chdir(tmp_path)
    config = load_config("configs/run.yaml", ["train.epochs=1"])
    assert config.data.manifest.is_absolute()
    assert config.data.manifest == tmp_path / "configs" / ".." / "data" / "m.csv"


def test_overrides_are_parsed_as_yaml(tmp_path):
    path = write(tmp_path, {"data": {"manifest": "m.csv"}})
    config = load_config(path, ["train.epochs=3", "model.params={width: 0.5}", "seed=7"])
    assert config.train.epochs == 3 and config.model.params == {"width": 0.5}
    assert config.seed == 7


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"data": {"manifest": "m.csv"}, "trian": {}}, r"option 'trian': Extra inputs"),
        ({"data": {"manifest": "m.csv"}, "train": {"epochs": "many"}}, r"option 'train.epochs'"),
        ({"data": {"manifest": "m.csv"}, "train": {"epochs": 0}}, r"option 'train.epochs'"),
        ({"data": {"manifest": "m.csv", "prepare": {"sise": 3}}}, r"'data.prepare.sise'"),
        ({"data": {"manifest": "m.csv"}, "optim": {"name": "lbfgs"}}, r"'optim.name'"),
        (
            {"data": {"manifest": "m.csv"}, "transforms": {"crop_scale": [0.9, 0.1]}},
            r"'transforms.crop_scale'",
        ),
        ({"sampler": {}}, r"option 'data': Field required"),
        (
            {"data": {"manifest": "m.csv"}, "model": {"pooling_level": "features"}},
            r"option 'model.pooling_level': Input should be 'score' or 'feature'",
        ),
        (
            {
                "data": {"manifest": "m.csv"},
                "model": {"pooling_level": "feature"},
                "pooling": {"name": "softmax"},
            },
            r"model.pooling_level 'feature' .* pooling.name must be 'avg' \(got 'softmax'\)",
        ),
        (
            {
                "data": {"manifest": "m.csv"},
                "model": {"pooling_level": "feature"},
                "eval": {"pooling": {"name": "max"}},
            },
            r"eval.pooling.name must be 'avg' \(got 'max'\)",
        ),
    ],
)
def test_invalid_options_are_named(tmp_path, data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, data))


def test_file_level_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  manifest: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ invalid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listing)
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        load_config(write(tmp_path, {"data": {"manifest": "m.csv"}}), ["epochs"])


def test_preparation_key_changes_with_settings(tmp_path):
    base = load_config(write(tmp_path, {"data": {"manifest": "m.csv"}}))
    other = load_config(write(tmp_path, {"data": {"manifest": "m.csv", "prepare": {"size": 64}}}))
    assert base.data.prepare.key() != other.data.prepare.key()
    assert base.data.prepare.key() == base.data.prepare.model_copy().key()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["data", "train", "model", "optim", "seed", "x"]), json_values, max_size=4
    )
)
def test_random_configs_validate_or_fail_with_a_config_error(raw):
    try:
        parse_config(raw, source="random.yaml")
    except ConfigError as error:
        assert str(error).startswith("random.yaml")
