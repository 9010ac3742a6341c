"""The ``vgg16`` frame CNN starts from VGG-Face's ``vgg_face_dag.pth`` with its normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from vidfer.errors import VidferError
from vidfer.models.contract import VGG_FACE_MEAN_255
from vidfer.models.frame_cnns import build_frame_cnn
from vidfer.models.frame_runs import load_frame_run
from vidfer.training.frames import FrameTrainSettings, train_frames

CONV_NAMES = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
SMALL = {"pool": 1, "input_size": 32}  # fc6 reads 512 x 1 x 1 (the published 512 x 7 x 7: 103M)


def _vgg_face_file(path: Path) -> dict[str, torch.Tensor]:
    """A file in ``vgg_face_dag.pth``'s names and shapes, random values; ``fc6`` sized for
    ``pool: 1`` (4096 x 512 instead of the published 4096 x 25088)."""
    torch.manual_seed(3)
    convs = [m for m in make_layers(cfgs["D"]) if isinstance(m, torch.nn.Conv2d)]
    state: dict[str, torch.Tensor] = {}
    for name, conv in zip(CONV_NAMES, convs, strict=True):
        state[f"{name}.weight"] = torch.randn_like(conv.weight)
        state[f"{name}.bias"] = torch.randn_like(conv.bias)
    for name, shape in (("fc6", (4096, 512)), ("fc7", (4096, 4096)), ("fc8", (2622, 4096))):
        state[f"{name}.weight"], state[f"{name}.bias"] = torch.randn(shape), torch.randn(shape[0])
    torch.save(state, path)
    return state


@pytest.mark.slow  # VGG-16's 138M parameters are initialised before the file is read
def test_vgg_face_loads_bit_for_bit_with_its_normalisation(tmp_path: Path) -> None:
    published = _vgg_face_file(tmp_path / "vgg_face_dag.pth")
    model = build_frame_cnn("vgg16", 5, weights=str(tmp_path / "vgg_face_dag.pth"), **SMALL)
    ours = model.net.state_dict()
    indices = [i for i, m in enumerate(model.net.features) if isinstance(m, torch.nn.Conv2d)]
    for name, index in zip(CONV_NAMES, indices, strict=True):
        for kind in ("weight", "bias"):
            assert torch.equal(ours[f"features.{index}.{kind}"], published[f"{name}.{kind}"])
    for name, index in (("fc6", 0), ("fc7", 3)):
        for kind in ("weight", "bias"):
            assert torch.equal(ours[f"classifier.{index}.{kind}"], published[f"{name}.{kind}"])
    assert ours["classifier.6.weight"].shape == (5, 4096)  # fc8's 2622 identities: new
    # Its input: RGB in 0-255 less VGG-Face's mean, std 1.
    assert model.normalisation == "vgg_face"
    frame = np.full((1, 32, 32, 3), (129, 105, 94), dtype=np.uint8)
    expected = torch.tensor([129.0, 105.0, 94.0]) - torch.tensor(VGG_FACE_MEAN_255)
    torch.testing.assert_close(model.prepare(frame)[0, :, 0, 0], expected, rtol=0, atol=1e-3)
    assert build_frame_cnn("vgg16", 5, **SMALL).normalisation == "imagenet"


@pytest.mark.slow
def test_a_vgg_face_file_that_does_not_fit_names_the_key(tmp_path: Path) -> None:
    published = _vgg_face_file(tmp_path / "vgg_face_dag.pth")
    with pytest.raises(VidferError, match=r"classifier\.0\.weight"):
        build_frame_cnn("vgg16", 5, weights=str(tmp_path / "vgg_face_dag.pth"))  # pool 7: 25088
    published["conv9_1.weight"] = published.pop("conv5_3.weight")
    torch.save(published, tmp_path / "bad.pth")
    with pytest.raises(VidferError, match=r"conv9_1\.weight"):
        build_frame_cnn("vgg16", 5, weights=str(tmp_path / "bad.pth"), **SMALL)


@pytest.mark.slow
def test_a_train_frames_run_from_vgg_face_keeps_its_normalisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / f"{i}.png"), image)
    weights = tmp_path / "vgg_face_dag.pth"
    _vgg_face_file(weights)
    settings = FrameTrainSettings(
        model="vgg16", params={**SMALL, "weights": str(weights)}, epochs=1, batch_size=4
    )
    train_frames(tmp_path / "images", tmp_path / "run", settings)
    recorded = json.loads((tmp_path / "run" / "settings.json").read_text())["params"]
    assert recorded["normalisation"] == "vgg_face"
    weights.unlink()  # the run's model is rebuilt without the file, with the same input
    model, _ = load_frame_run(tmp_path / "run")
    assert model.mean == tuple(m / 255 for m in VGG_FACE_MEAN_255)
