"""Published checkpoint layouts (Hara's 3D-ResNets-PyTorch, the C3D Sports-1M ports) as files.

Every file is written here in its published format: the key names and shapes of the code that
wrote it (kenshohara/3D-ResNets-PyTorch models/resnext.py and resnet.py, CVPR2018 and master;
DavideA/c3d-pytorch C3D_model.py; jfzhang95/pytorch-video-recognition network/C3D_model.py),
its wrapping, and random values; vidfer must hold every backbone tensor bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import vgg16

from vidfer.config import ModelConfig
from vidfer.errors import CheckpointError
from vidfer.models import model_from_config

Shapes = dict[str, tuple[int, ...]]


def _bn(prefix: str, channels: int, *, tracked: bool) -> Shapes:
    shapes: Shapes = {f"{prefix}.{k}": (channels,) for k in ("weight", "bias")}
    shapes |= {f"{prefix}.{k}": (channels,) for k in ("running_mean", "running_var")}
    return shapes | ({f"{prefix}.num_batches_tracked": ()} if tracked else {})


def hara_resnext101(*, tracked: bool) -> Shapes:
    """Hara's ``resnext.resnet101`` (cardinality 32, shortcut B, 400 classes): names, shapes."""
    shapes = {"conv1.weight": (64, 3, 7, 7, 7)} | _bn("bn1", 64, tracked=tracked)
    in_planes, cardinality = 64, 32
    for layer, (planes, depth) in enumerate(
        zip((128, 256, 512, 1024), (3, 4, 23, 3), strict=True), start=1
    ):
        for block in range(depth):
            p, mid, out = f"layer{layer}.{block}", cardinality * planes // 32, planes * 2
            shapes[f"{p}.conv1.weight"] = (mid, in_planes, 1, 1, 1)
            shapes[f"{p}.conv2.weight"] = (mid, mid // cardinality, 3, 3, 3)
            shapes[f"{p}.conv3.weight"] = (out, mid, 1, 1, 1)
            for bn, channels in (("bn1", mid), ("bn2", mid), ("bn3", out)):
                shapes |= _bn(f"{p}.{bn}", channels, tracked=tracked)
            if block == 0:  # stride 2 (layers 2-4) or 64 != 256 channels (layer 1)
                shapes[f"{p}.downsample.0.weight"] = (out, in_planes, 1, 1, 1)
                shapes |= _bn(f"{p}.downsample.1", out, tracked=tracked)
            in_planes = out
    return shapes | {"fc.weight": (400, 2048), "fc.bias": (400,)}


def hara_resnet(depth: int) -> Shapes:
    """Hara's 2020 ``resnet.generate_model`` (shortcut B, 700 classes), without values."""
    bottleneck = depth >= 50
    blocks = {18: (2, 2, 2, 2), 101: (3, 4, 23, 3)}[depth]
    shapes = {"conv1.weight": (64, 3, 7, 7, 7)} | _bn("bn1", 64, tracked=True)
    in_planes = 64
    for layer, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), start=1):
        out = planes * (4 if bottleneck else 1)
        for block in range(count):
            p = f"layer{layer}.{block}"
            convs = [(planes, in_planes, 1), (planes, planes, 3), (out, planes, 1)]
            for index, (o, i, k) in enumerate(convs if bottleneck else [(planes, in_planes, 3)]):
                shapes[f"{p}.conv{index + 1}.weight"] = (o, i, k, k, k)
                shapes |= _bn(f"{p}.bn{index + 1}", o, tracked=True)
            if block == 0 and (layer > 1 or in_planes != out):
                shapes[f"{p}.downsample.0.weight"] = (out, in_planes, 1, 1, 1)
                shapes |= _bn(f"{p}.downsample.1", out, tracked=True)
            in_planes = out
    return shapes | {"fc.weight": (700, in_planes), "fc.bias": (700,)}


C3D_CONVS = {  # DavideA/c3d-pytorch: name -> (out, in) of each 3x3x3 conv
    "conv1": (64, 3),
    "conv2": (128, 64),
    "conv3a": (256, 128),
    "conv3b": (256, 256),
    "conv4a": (512, 256),
    "conv4b": (512, 512),
    "conv5a": (512, 512),
    "conv5b": (512, 512),
}
C3D_FEATURES = dict(zip(C3D_CONVS, (0, 3, 6, 8, 11, 13, 16, 18), strict=True))


def c3d_sports1m() -> Shapes:
    """DavideA's ``C3D`` (c3d.pickle): 8 convs, fc6 (8192 -> 4096), fc7, fc8 (487 classes)."""
    shapes: Shapes = {}
    for name, (out, channels) in C3D_CONVS.items():
        shapes |= {f"{name}.weight": (out, channels, 3, 3, 3), f"{name}.bias": (out,)}
    for name, (out, channels) in {"fc6": (4096, 8192), "fc7": (4096, 4096)}.items():
        shapes |= {f"{name}.weight": (out, channels), f"{name}.bias": (out,)}
    return shapes | {"fc8.weight": (487, 4096), "fc8.bias": (487,)}


def _random(shapes: Shapes) -> dict[str, torch.Tensor]:
    torch.manual_seed(11)
    return {
        key: torch.randint(0, 50, shape) if key.endswith("tracked") else torch.randn(shape)
        for key, shape in shapes.items()
    }


def _empty(shapes: Shapes) -> dict[str, torch.Tensor]:
    """Tensors of the shapes that take no room in a file (for the files that must not load)."""
    return {key: torch.zeros(()).expand(shape) for key, shape in shapes.items()}


def _assert_loaded(
    model: torch.nn.Module, published: dict[str, torch.Tensor], key_of: dict[str, str]
) -> None:
    """Every published tensor is in the model, bit for bit, under vidfer's name (``key_of``)."""
    ours = model.state_dict()
    for key, value in published.items():
        assert torch.equal(ours[key_of.get(key, key)], value), key


def test_hara_2018_resnext101_kinetics_loads_bit_for_bit(tmp_path: Path) -> None:
    """resnext-101-kinetics.pth: DataParallel's ``module.``, no ``num_batches_tracked``."""
    published = _random(hara_resnext101(tracked=False))
    checkpoint = {"epoch": 146, "arch": "resnext-101", "optimizer": {"state": {}}}
    checkpoint["state_dict"] = {f"module.{k}": v for k, v in published.items()}
    torch.save(checkpoint, tmp_path / "resnext-101-kinetics.pth")
    section = ModelConfig(name="resnext3d_101", weights=str(tmp_path / "resnext-101-kinetics.pth"))
    model = model_from_config(section, num_classes=6)
    backbone = {k: v for k, v in published.items() if not k.startswith("fc.")}
    _assert_loaded(model, backbone, {})
    ours = model.state_dict()
    assert ours["head.classifier.weight"].shape[0] == 6
    assert ours["bn1.num_batches_tracked"] == 0
    assert len(backbone) == len([k for k in ours if not k.endswith("tracked")]) - 2  # the head

    # The 2020 code's checkpoints: no prefix, num_batches_tracked saved; a missing key is named.
    tracked = [k.replace("running_mean", "num_batches_tracked") for k in published if "mean" in k]
    published |= {key: torch.tensor(5) for key in tracked}
    del published["layer3.7.bn2.running_var"]
    torch.save({"arch": "resnext-101", "state_dict": published}, tmp_path / "save_200.pth")
    with pytest.raises(CheckpointError, match=r"save_200\.pth .*missing: layer3\.7\.bn2\.running"):
        model_from_config(section.model_copy(update={"weights": str(tmp_path / "save_200.pth")}), 6)


def test_c3d_sports1m_ports_load_bit_for_bit(tmp_path: Path) -> None:
    """DavideA's c3d.pickle (a plain state dict) and jfzhang95's c3d-pretrained.pth names."""
    published = _random(c3d_sports1m())
    torch.save(published, tmp_path / "c3d.pickle")
    model = model_from_config(ModelConfig(name="c3d", weights=str(tmp_path / "c3d.pickle")), 4)
    key_of = {
        f"{conv}.{p}": f"features.{i}.{p}"
        for conv, i in C3D_FEATURES.items()
        for p in ("weight", "bias")
    }
    backbone = {k: v for k, v in published.items() if not k.startswith("fc8.")}
    _assert_loaded(model, backbone, key_of)
    assert model.state_dict()["head.classifier.weight"].shape[0] == 4

    jfzhang = {key_of.get(k, k): v for k, v in backbone.items()}
    jfzhang = {
        k.replace("fc6.", "classifier.0.").replace("fc7.", "classifier.3."): v
        for k, v in jfzhang.items()
    }
    torch.save(jfzhang, tmp_path / "c3d-pretrained.pth")
    model = model_from_config(
        ModelConfig(name="c3d", weights=str(tmp_path / "c3d-pretrained.pth")), 4
    )
    _assert_loaded(model, backbone, key_of)


def test_c3d_sports1m_loads_bit_for_bit_into_the_dense_c3d(tmp_path: Path) -> None:
    """The dense variant keeps every parameter's name and shape: the same file fills it."""
    published = _random(c3d_sports1m())
    torch.save(published, tmp_path / "c3d.pickle")
    section = ModelConfig(name="c3d", params={"dense": True}, weights=str(tmp_path / "c3d.pickle"))
    model = model_from_config(section, 4)
    assert model.geometry.dense
    key_of = {
        f"{conv}.{p}": f"features.{i}.{p}"
        for conv, i in C3D_FEATURES.items()
        for p in ("weight", "bias")
    }
    _assert_loaded(model, {k: v for k, v in published.items() if not k.startswith("fc8.")}, key_of)


def test_a_c3d_file_with_a_wrong_shape_or_a_missing_key_names_it(tmp_path: Path) -> None:
    shapes = c3d_sports1m()
    shapes["fc6.weight"] = (4096, 4608)  # e.g. the port run on 96-pixel clips
    del shapes["conv3b.bias"]
    torch.save(_empty(shapes), tmp_path / "c3d.pickle")
    with pytest.raises(CheckpointError) as error:
        model_from_config(ModelConfig(name="c3d", weights=str(tmp_path / "c3d.pickle")), 4)
    message = str(error.value)
    assert "c3d.pickle (read as DavideA/c3d-pytorch C3D Sports-1M" in message
    assert "missing: features.8.bias (file: conv3b.bias)" in message
    assert "shape: fc6.weight (4096, 4608) vs (4096, 8192)" in message

    torch.save(_empty(c3d_sports1m()) | {"conv6.weight": torch.zeros(1)}, tmp_path / "c3d.pickle")
    with pytest.raises(CheckpointError, match=r"keys not in the DavideA.* layout: conv6\.weight"):
        model_from_config(ModelConfig(name="c3d", weights=str(tmp_path / "c3d.pickle")), 4)
    with pytest.raises(CheckpointError, match=r"for the model c3d, not resnet3d_18"):
        model_from_config(ModelConfig(name="resnet3d_18", weights=str(tmp_path / "c3d.pickle")), 4)


def test_hara_resnets_fit_no_vidfer_model_and_say_why(tmp_path: Path) -> None:
    """The 2020 r3d<depth>_*.pth files (arch resnet-<depth>, shortcut B, no module. prefix)."""
    r3d18 = {"arch": "resnet-18", "state_dict": _empty(hara_resnet(18))}
    torch.save(r3d18, tmp_path / "r3d18_K_200ep.pth")
    with pytest.raises(CheckpointError) as error:
        model_from_config(
            ModelConfig(name="resnet3d_18", weights=str(tmp_path / "r3d18_K_200ep.pth")), 3
        )
    message = str(error.value)
    assert (
        "resnet-18 has a 7x7x7 stem conv (conv1.weight (64, 3, 7, 7, 7)) and a 3x3x3 max-pool"
        in message
    )
    assert "3x7x7 stem and no max-pool" in message and "KINETICS400_V1" in message

    r3d101 = {"arch": "resnet-101", "state_dict": _empty(hara_resnet(101))}
    torch.save(r3d101, tmp_path / "r3d101_KM_200ep.pth")
    with pytest.raises(
        CheckpointError, match=r"resnet-101 .*not the resnext-101 .*of resnext3d_101"
    ):
        model_from_config(
            ModelConfig(name="resnext3d_101", weights=str(tmp_path / "r3d101_KM_200ep.pth")), 3
        )


def test_a_file_of_vidfers_own_resnext3d_101_still_loads(tmp_path: Path) -> None:
    """Its names are Hara's: it is read through his table, its head dropped as his fc."""
    section = ModelConfig(name="resnext3d_101", params={"width": 0.25})
    torch.manual_seed(2)
    source = model_from_config(section, num_classes=5).state_dict()
    torch.save(source, tmp_path / "own.pt")
    model = model_from_config(section.model_copy(update={"weights": str(tmp_path / "own.pt")}), 3)
    _assert_loaded(model, {k: v for k, v in source.items() if not k.startswith("head.")}, {})


def test_vgg_face_is_read_and_inflated_into_i3d_vgg16(tmp_path: Path) -> None:
    """``vgg_face_dag.pth``: ``conv<b>_<i>`` 2D kernels of VGG-16's shapes, ``fc6``-``fc8`` (here
    ``fc8`` only, at its shape: the three are dropped alike; ``fc6`` alone is 103M values)."""
    torch.manual_seed(4)
    features = vgg16().features
    convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
    names = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
    published: dict[str, torch.Tensor] = {}
    for name, conv in zip(names, convs, strict=True):
        published[f"{name}.weight"] = torch.randn_like(conv.weight)
        published[f"{name}.bias"] = torch.randn_like(conv.bias)
    published["fc8.weight"], published["fc8.bias"] = torch.randn(2622, 4096), torch.randn(2622)
    path = tmp_path / "vgg_face_dag.pth"
    torch.save(published, path)
    model = model_from_config(ModelConfig(name="i3d_vgg16", weights=str(path)), num_classes=7)
    ours = model.state_dict()
    indices = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
    for name, index in zip(names, indices, strict=True):
        kernel = published[f"{name}.weight"]  # (O, I, 3, 3) -> (O, I, 3, 3, 3) / 3
        assert torch.equal(
            ours[f"features.{index}.weight"], kernel.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3
        )
        assert torch.equal(ours[f"features.{index}.bias"], published[f"{name}.bias"])
    del published["conv3_2.bias"]
    torch.save(published, path)
    with pytest.raises(CheckpointError, match=r"features\.12\.bias \(file: conv3_2\.bias\)"):
        model_from_config(ModelConfig(name="i3d_vgg16", weights=str(path)), num_classes=7)
