"""A run config takes its model's input contract (architecture and weights) unless it writes
its own, and an input a fixed-length model cannot take is an error when the config is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torchvision.models.vgg import cfgs, make_layers

import vidfer
from vidfer.config import parse_config
from vidfer.errors import ConfigError
from vidfer.io.run_folder import RunDir
from vidfer.models.catalogue import describe_family
from vidfer.models.contract import FER_INPUT, VGG_FACE_INPUT, InputContract
from vidfer.pipelines import resolve_config

from helpers import CONFIGS, vidfer_forked

DATA = {"manifest": "/data/manifest.csv"}


def _resolved(**sections: object) -> vidfer.RunConfig:
    return resolve_config(parse_config({"data": DATA, **sections}))


def test_a_contract_says_its_range_and_gives_way_where_the_architecture_allows() -> None:
    assert FER_INPUT.value_range == (-1.0, 1.0)
    low, high = VGG_FACE_INPUT.value_range or (0, 0)
    assert low == pytest.approx(-129.186, abs=1e-3)
    assert high == pytest.approx(255 - 93.594, abs=1e-3)
    assert FER_INPUT.normalisation(3) == ((0.5,) * 3, (0.5,) * 3)
    fixed = InputContract(size=224, frames=16, fixed_size=True, fixed_frames=True)
    taken = fixed.taking(InputContract(mean=(0.4,), std=(0.2,), size=112, gray=True))
    assert (taken.size, taken.frames, taken.mean, taken.gray) == (224, 16, (0.4,), True)
    assert InputContract(size=112).taking(VGG_FACE_INPUT).size == 224
    with pytest.raises(ValueError, match="together"):
        InputContract(mean=(0.5,))


def test_a_vgg_face_file_brings_its_normalisation_without_transform_options(
    tmp_path: Path,
) -> None:
    """``vgg_face_dag.pth`` (its names, random values; fc6-fc8 are dropped and left out)."""
    convs = [m for m in make_layers(cfgs["D"]) if isinstance(m, torch.nn.Conv2d)]
    names = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
    state = {}
    for name, conv in zip(names, convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = conv.weight.data, conv.bias.data
    torch.save(state, tmp_path / "vgg_face_dag.pth")
    model = {"name": "i3d_vgg16", "weights": str(tmp_path / "vgg_face_dag.pth")}
    config = _resolved(model=model)
    assert config.transforms.mean == pytest.approx((0.50661, 0.41083, 0.36704), abs=1e-5)
    assert config.transforms.std == (1 / 255,) * 3 and config.transforms.size == 224
    written = _resolved(model=model, transforms={"size": 112, "mean": [0.5] * 3, "std": [0.5] * 3})
    assert written.transforms.mean == (0.5,) * 3 and written.transforms.size == 112
    assert resolve_config(config) == config  # resolving twice changes nothing (resume)


def test_the_fer_model_needs_no_transform_options() -> None:
    config = _resolved(model={"name": "i3d_mini_xception"})
    assert config.transforms.mean == (0.5,) * 3 and config.transforms.std == (0.5,) * 3
    assert config.transforms.size == 64  # the FER2013 faces' side, unless written


def test_a_fixed_length_model_takes_its_frames_and_size_when_the_config_writes_none() -> None:
    config = _resolved(model={"name": "swin3d_t", "weights": "KINETICS400_V1"})
    assert config.sampler.clip_len == 32 and config.eval.clip_len == 32
    assert config.transforms.size == 224 and config.transforms.mean == (0.485, 0.456, 0.406)
    pairs = _resolved(
        model={"name": "fstcn", "params": {"clip_len": 5}},
        sampler={"name": "clip_pairs", "params": {"offset": 4}},
        eval={"mode": "views"},
    )
    assert pairs.sampler.clip_len == 5 and pairs.transforms.size == 204


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"model": {"name": "mvit_v2_s"}, "transforms": {"size": 112}},
            r"model 'mvit_v2_s' takes frames of 224 x 224 pixels, but transforms.size is 112; "
            r"set transforms.size: 224",
        ),
        (
            {"model": {"name": "swin3d_t"}, "sampler": {"clip_len": 16}},
            r"model 'swin3d_t' takes clips of 32 frames, .* set sampler.clip_len: 32",
        ),
        (
            {"model": {"name": "c3d"}, "sampler": {"clip_len": 8}},
            r"model 'c3d' takes clips of 16 frames, .* set sampler.clip_len: 16",
        ),
    ],
)
def test_a_wrong_input_is_a_config_error_at_load(
    sections: dict, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"data": DATA, **sections}))
    with pytest.raises(ConfigError, match=message):
        vidfer.load_config(path)


def test_vidfer_models_counts_flops_on_the_meta_device() -> None:
    family = describe_family("c3d")
    assert family.clip == (3, 16, 112, 112) and family.contract.fixed_frames
    # conv1 alone: 2 x (64 x 3 x 27) x (16 x 112 x 112) multiply-adds
    assert family.flops > 2 * 64 * 3 * 27 * 16 * 112 * 112
    assert 77e9 < family.flops < 78e9 and 78.0e6 < family.parameters < 78.1e6
    s3d = describe_family("s3d")
    assert s3d.weights_contracts["KINETICS400_V1"].mean == (0.43216, 0.394666, 0.37645)


def test_a_run_folder_passes_on_the_input_its_run_was_trained_with(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"  # the run folder records its hash
    manifest.write_text("path,label\n")
    transforms = {"size": 96, "mean": [0.1, 0.2, 0.3], "std": [0.4] * 3}
    pretrain = parse_config({"data": {"manifest": str(manifest)}, "transforms": transforms})
    RunDir(tmp_path / "pretrain").initialise(pretrain, ["a", "b"], train=[], stopping=[])
    config = _resolved(model={"name": "resnet3d_18", "weights": str(tmp_path / "pretrain")})
    assert config.transforms.size == 96 and config.transforms.mean == (0.1, 0.2, 0.3)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_resolved(path: Path) -> None:
    vidfer.load_config(path)  # no weights file is read: the shipped configs name none


def test_vidfer_train_names_the_option_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump({"data": DATA, "model": {"name": "s3d"}, "transforms": {"size": 100}})
    )
    result = vidfer_forked("train", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "transforms.size is 100; set transforms.size: 224" in result.stderr
    assert not (tmp_path / "run").exists()
