"""``model.weights``: torchvision weights names from its cache, checkpoint files, run folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from torchvision.models import vgg16
from torchvision.models.video import r2plus1d_18, r3d_18

from vidfer.config import ModelConfig, load_config, parse_config
from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.checkpoint import save_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models import model_from_config
from vidfer.models.trained import load_run_model
from vidfer.pipelines import resolve_config

PUBLISHED = {
    "resnet3d_18": (r3d_18, "r3d_18-b3b3357e.pth"),
    "r2plus1d_18": (r2plus1d_18, "r2plus1d_18-91a641e6.pth"),
}


def _backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(("fc.", "head."))}


def _plant(torch_home: Path, name: str) -> dict[str, torch.Tensor]:
    """torchvision's model, random weights, saved where torchvision caches the published file."""
    build, file = PUBLISHED[name]
    torch.manual_seed(7)
    state = build(num_classes=400).state_dict()
    for value in state.values():
        if value.is_floating_point():
            value.copy_(torch.randn_like(value))  # nothing equals a fresh initialisation by chance
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / file)
    return state


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_torchvision_weights_name_loads_the_cached_file_bit_for_bit(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("VIDFER_OFFLINE", "1")  # a missing file must fail, never download
    published = _plant(tmp_path, name)
    model = model_from_config(ModelConfig(name=name, weights="KINETICS400_V1"), num_classes=5)
    ours = model.state_dict()
    for key, value in _backbone(published).items():
        assert torch.equal(ours[key], value), key
    assert ours["head.classifier.weight"].shape[0] == 5  # a new classifier for 5 classes


def test_a_missing_cached_file_names_the_file_and_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("VIDFER_OFFLINE", "1")
    folder = tmp_path / "hub" / "checkpoints"
    with pytest.raises(CheckpointError) as error:
        model_from_config(ModelConfig(name="resnet3d_18", weights="KINETICS400_V1"), 5)
    assert f"r3d_18-b3b3357e.pth is not in torchvision's cache {folder}" in str(error.value)
    with pytest.raises(ConfigError, match="not a weights name of resnet3d_18; known: KINETICS"):
        model_from_config(ModelConfig(name="resnet3d_18", weights="IMAGENET1K_V1"), 5)
    with pytest.raises(ConfigError, match="c3d has no published weights names"):
        model_from_config(ModelConfig(name="c3d", weights="SPORTS1M"), 5)


def test_a_wrapped_checkpoint_file_loads_and_a_mismatch_names_the_keys(tmp_path: Path) -> None:
    """``{"state_dict": {"module." + key: ...}}``: the wrapping of 3D-ResNets-PyTorch files."""
    torch.manual_seed(3)
    source = model_from_config(ModelConfig(name="resnet3d_18", params={"width": 0.25}), 7)
    wrapped = {"arch": "resnet-18", "epoch": 200}
    wrapped["state_dict"] = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "r18.pth"
    torch.save(wrapped, path)
    model = model_from_config(
        ModelConfig(name="resnet3d_18", params={"width": 0.25}, weights=str(path)), 3
    )
    for key, value in _backbone(source.state_dict()).items():
        assert torch.equal(model.state_dict()[key], value), key
    with pytest.raises(CheckpointError, match=r"do not match this model's backbone: shape: "):
        model_from_config(
            ModelConfig(name="resnet3d_18", params={"width": 0.5}, weights=str(path)), 3
        )
    with pytest.raises(CheckpointError, match=r"nothing\.pth: checkpoint not found"):
        model_from_config(ModelConfig(name="resnet3d_18", weights=str(tmp_path / "nothing.pth")), 3)


def _run_folder(folder: Path, weights: str | None = None) -> dict[str, torch.Tensor]:
    """A trained clip run's folder as ``vidfer train`` writes it (config, classes, best.pt)."""
    raw = {"data": {"manifest": str(folder / "m.csv")}, "model": {"name": "resnet3d_18"}}
    raw["model"]["params"] = {"width": 0.25}
    if weights is not None:
        raw["model"]["weights"] = weights
    torch.manual_seed(5)
    model = model_from_config(parse_config(raw).model.model_copy(update={"weights": None}), 4)
    run = RunDir(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.csv").write_text("path,label\n")
    run.initialise(parse_config(raw), ["a", "b", "c", "d"], train=[], stopping=[])
    state = {"model": model.state_dict(), "pooling": {}}
    save_checkpoint(run.checkpoint("best"), state, {"epoch": 1})
    return model.state_dict()


def test_a_run_folder_transfers_its_backbone_and_keeps_its_own_run_loadable(
    tmp_path: Path,
) -> None:
    trained = _run_folder(tmp_path / "pretrain")
    section = ModelConfig(
        name="resnet3d_18", params={"width": 0.25}, weights=str(tmp_path / "pretrain")
    )
    model = model_from_config(section, num_classes=2)  # another task, another class count
    for key, value in _backbone(trained).items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.state_dict()["head.classifier.weight"].shape[0] == 2
    with pytest.raises(CheckpointError, match="not a vidfer run folder"):
        model_from_config(ModelConfig(name="resnet3d_18", weights=str(tmp_path)), 2)

    # A run that started from weights is reloaded from its own checkpoint: the weights it started
    # from may be gone.
    gone = tmp_path / "gone.pth"
    finetuned = _run_folder(tmp_path / "finetune", weights=str(gone))
    loaded, _ = load_run_model(RunDir(tmp_path / "finetune"))
    for key, value in finetuned.items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_a_relative_weights_path_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    torch.save({}, tmp_path / "weights" / "w.pth")
    config = tmp_path / "configs" / "run.yaml"
    config.parent.mkdir()
    raw = {"data": {"manifest": "m.csv"}, "model": {"weights": "../weights/w.pth"}}
    config.write_text(yaml.safe_dump(raw))
    weights = load_config(config).model.weights
    assert weights is not None and Path(weights) == config.parent / "../weights/w.pth"
    assert os.path.isfile(weights)
    raw["model"]["weights"] = "KINETICS400_V1"
    config.write_text(yaml.safe_dump(raw))
    assert load_config(config).model.weights == "KINETICS400_V1"


def test_imagenet_vgg16_is_inflated_into_i3d_vgg16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision's ImageNet VGG-16 by name: each 2D kernel repeated over the time kernel and
    divided by it (the thesis's rule), so a clip of one repeated image gives, away from its ends,
    the 2D network's features of that image. (The planted file holds the published file's
    ``features.*`` tensors; its ``classifier.*`` are left out here, 120M parameters the loader
    drops anyway.)"""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("VIDFER_OFFLINE", "1")
    torch.manual_seed(1)
    image_net = vgg16().features.eval()
    published = {f"features.{k}": v for k, v in image_net.state_dict().items()}
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(published, folder / "vgg16-397923af.pth")
    model = model_from_config(ModelConfig(name="i3d_vgg16", weights="IMAGENET1K_V1"), 5).eval()
    ours = model.state_dict()
    for key, value in published.items():
        expected = value.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3 if value.dim() == 4 else value
        assert torch.equal(ours[key], expected), key
    image = torch.rand(1, 3, 32, 32)
    clip = image.unsqueeze(2).repeat(1, 1, 40, 1, 1)  # (1, 3, 32, 32) -> (1, 3, 40, 32, 32)
    with torch.no_grad():
        frame = image_net(image)  # (1, 512, 1, 1)
        middle = model.forward_features(clip)[:, :, 20]  # (1, 512, T, 1, 1) -> (1, 512, 1, 1)
    torch.testing.assert_close(middle, frame, rtol=1e-4, atol=1e-5)
    config = resolve_config(
        parse_config(
            {
                "data": {"manifest": "m.csv"},
                "model": {"name": "i3d_vgg16", "weights": "IMAGENET1K_V1"},
            }
        )
    )
    assert config.transforms.mean == (0.485, 0.456, 0.406)  # ImageNet's, from the preset
