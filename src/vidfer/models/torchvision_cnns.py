"""torchvision's VGG-16 and ResNets as frame CNNs (Xu et al.'s VGG-Face and ResNet-10 backbones).

The papers' VGG-Face and fine-tuned ResNet-10 weights, and torchvision's ImageNet weights, come from
model hubs that cannot be reached offline: these start untrained, or from a state dict the user
provides (``weights``): in torchvision's names, or for ``vgg16`` the VGG-Face PyTorch conversion
``vgg_face_dag.pth`` (read by :data:`vidfer.models.published.VGGFACE_DAG_2D`, with VGG-Face's
input normalisation). Importing :mod:`vidfer.models` registers them as ``vgg16``, ``resnet18`` and
``resnet10``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from vidfer.errors import ConfigError
from vidfer.io.checkpoint import read_state_dict
from vidfer.models.contract import VGG_FACE_INPUT
from vidfer.models.frame_cnns import FrameCNN, check_channels, per_channel, register_frame_cnn
from vidfer.models.published import VGGFACE_DAG_2D, is_vggface_dag, to_vidfer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VGG16_INPUTS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "vgg_face": (VGG_FACE_INPUT.mean or (), VGG_FACE_INPUT.std or ()),
}
"""The ``vgg16`` frame CNN's input normalisations (``[0, 1]`` pixels), by name."""


def _load_weights(
    net: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, classifier: str, model: str
) -> None:
    """Load a torchvision-named state dict; classifier tensors of another shape stay new.

    Raises:
        ConfigError: if the state does not fit ``net``.
    """
    own = net.state_dict()
    kept = {
        key: value
        for key, value in state.items()
        if not (key.startswith(f"{classifier}.") and key in own and value.shape != own[key].shape)
    }
    try:
        result = net.load_state_dict(kept, strict=False)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise ConfigError(f"{path}: does not fit {model}: {first}") from None
    missing = [key for key in result.missing_keys if not key.startswith(f"{classifier}.")]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"{path}: does not fit torchvision's {model}: missing {missing[:3]}, unexpected "
            f"{result.unexpected_keys[:3]}; use torchvision's parameter names"
        )


class VGG16CNN(FrameCNN):
    """torchvision's VGG-16, untrained or from a weights file (e.g. VGG-Face's conversion).

    Layers: ``"pool5"``, ``"fc6"`` and ``"fc7"`` (after their ReLU; ``"features"`` is fc7) and
    ``"logits"``. On inputs smaller than 224 the adaptive pooling repeats the last maps up to 7x7,
    unless ``pool`` is smaller (fc6 then takes ``512 * pool * pool`` inputs).

    Args:
        num_classes: Output classes.
        input_size: Input side S (224 as in the paper; e.g. 64 for small CPU runs).
        in_channels: 3 (RGB) or 1 (the first convolution then takes one channel).
        dropout: Dropout of the fully connected layers.
        pool: Side of the pooled maps fc6 reads (7 as in VGG-16; 1 for small inputs: fc6 then
            has 2M weights instead of 103M).
        weights: A state dict to start from: in torchvision's names (the classifier is kept new
            when its shape differs), or VGG-Face's ``vgg_face_dag.pth`` (``conv1_1`` ...
            ``fc7`` read into VGG-16's layers; its ``fc8`` of 2622 identities left out).
        normalisation: The input normalisation, ``imagenet`` or ``vgg_face`` (RGB in 0-255 less
            VGG-Face's mean); None: VGG-Face's when ``weights`` is a VGG-Face file, else
            ImageNet's. A run records it, so that the model rebuilt without the file reads
            the same input.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        input_size: int = 224,
        in_channels: int = 3,
        dropout: float = 0.5,
        pool: int = 7,
        weights: str | None = None,
        normalisation: Literal["imagenet", "vgg_face"] | None = None,
    ) -> None:
        super().__init__()
        check_channels(in_channels)
        if pool < 1:
            raise ConfigError(f"vgg16: pool must be >= 1, got {pool}")
        from torchvision.models import vgg16  # torchvision only when the model is built

        self.net = vgg16(weights=None, num_classes=num_classes, dropout=dropout)
        if pool != 7:
            self.net.avgpool = nn.AdaptiveAvgPool2d(pool)
            self.net.classifier[0] = nn.Linear(512 * pool * pool, 4096)
        if in_channels == 1:
            self.net.features[0] = nn.Conv2d(1, 64, 3, padding=1)
        if normalisation is not None and normalisation not in VGG16_INPUTS:
            raise ConfigError(
                f"vgg16: normalisation {normalisation!r} must be one of {', '.join(VGG16_INPUTS)}"
            )
        face = False
        if weights is not None:
            state: Mapping[str, torch.Tensor] = read_state_dict(weights, error=ConfigError)
            face = is_vggface_dag(state)
            if face:  # fc8 (VGG-Face's identities) is left out: the classifier stays new
                state = to_vidfer(state, VGGFACE_DAG_2D, str(weights))
            _load_weights(self.net, state, weights, "classifier.6", "vgg16")
        self.normalisation = normalisation or ("vgg_face" if face else "imagenet")
        self.input_size, self.in_channels, self.num_classes = input_size, in_channels, num_classes
        mean, std = VGG16_INPUTS[self.normalisation]
        self.mean, self.std = per_channel(mean, in_channels), per_channel(std, in_channels)
        self.feature_layers = {
            "pool5": "net.features.30",
            "fc6": "net.classifier.1",
            "fc7": "net.classifier.4",
            "features": "net.classifier.4",
            "logits": "net.classifier.6",
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of images ``(B, C, S, S)``."""
        return self.net(x)

    def architecture_params(self) -> dict[str, Any]:
        """The normalisation its weights chose."""
        return {"normalisation": self.normalisation}

    def replace_classifier(self, num_classes: int) -> None:
        """New last fully connected layer with ``num_classes`` outputs."""
        old = self.net.classifier[6]
        assert isinstance(old, nn.Linear)
        self.net.classifier[6] = nn.Linear(old.in_features, num_classes)
        self.num_classes = num_classes


class ResNetCNN(FrameCNN):
    """torchvision's ResNet with basic blocks: ResNet-18 (2-2-2-2) or ResNet-10 (1-1-1-1).

    Without weights (Xu et al.'s ResNet-10 is not obtainable offline). Layers ``"layer1"`` ..
    ``"layer4"``, ``"features"`` (global average pool, ``(B, 512, 1, 1)``), ``"fc1"`` when
    ``fc1`` > 0 (Xu et al.'s extra fully connected layer between the pool and the classifier)
    and ``"logits"``.

    Args:
        num_classes: Output classes.
        blocks: Basic blocks per stage.
        fc1: Units of the extra fully connected layer (0: none).
        input_size: Input side S (224; Xu et al. use 150; e.g. 64 for small CPU runs).
        in_channels: 3 (RGB) or 1.
        weights: A state dict (torchvision names) to start from; the classifier is kept new when
            its shape differs.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        blocks: Sequence[int] = (2, 2, 2, 2),
        fc1: int = 0,
        input_size: int = 224,
        in_channels: int = 3,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        check_channels(in_channels)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ConfigError(f"resnet: blocks must be 4 positive counts, got {list(blocks)}")
        from torchvision.models.resnet import BasicBlock, ResNet  # only when it is built

        self.net = ResNet(BasicBlock, list(blocks), num_classes=num_classes)
        if in_channels == 1:
            self.net.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        self.feature_layers = {f"layer{n}": f"net.layer{n}" for n in range(1, 5)}
        self.feature_layers["features"] = "net.avgpool"
        self.fc1 = fc1
        if fc1 > 0:
            self.net.fc = nn.Sequential(nn.Linear(512, fc1), nn.ReLU(), nn.Linear(fc1, num_classes))
            self.feature_layers.update(fc1="net.fc.1", logits="net.fc.2")
        else:
            self.feature_layers["logits"] = "net.fc"
        if weights is not None:
            state = read_state_dict(weights, error=ConfigError)
            _load_weights(self.net, state, weights, "fc.2" if fc1 > 0 else "fc", "resnet")
        self.input_size, self.in_channels, self.num_classes = input_size, in_channels, num_classes
        self.mean = per_channel(IMAGENET_MEAN, in_channels)
        self.std = per_channel(IMAGENET_STD, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of images ``(B, C, S, S)``."""
        return self.net(x)

    def replace_classifier(self, num_classes: int) -> None:
        """New last fully connected layer with ``num_classes`` outputs."""
        if isinstance(self.net.fc, nn.Sequential):
            self.net.fc[2] = nn.Linear(self.fc1, num_classes)
        else:
            self.net.fc = nn.Linear(self.net.fc.in_features, num_classes)
        self.num_classes = num_classes


def resnet18(num_classes: int, **params: object) -> FrameCNN:
    """torchvision's ResNet-18 without weights (see :class:`ResNetCNN`)."""
    return ResNetCNN(num_classes, blocks=(2, 2, 2, 2), **params)  # type: ignore[arg-type]


def resnet10(num_classes: int, **params: object) -> FrameCNN:
    """ResNet-10 (one basic block per stage), Xu et al.'s architecture without its weights."""
    return ResNetCNN(num_classes, blocks=(1, 1, 1, 1), **params)  # type: ignore[arg-type]


register_frame_cnn("vgg16", VGG16CNN)
register_frame_cnn("resnet18", resnet18, ResNetCNN)
register_frame_cnn("resnet10", resnet10, ResNetCNN)
