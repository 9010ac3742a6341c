"""Published checkpoint layouts read into vidfer's parameter names (``model.weights`` files).

Each layout is a small table of key prefixes, published prefix -> vidfer prefix, checked
against the public code that wrote the files:

- :data:`HARA_RESNEXT`: 3D-ResNets-PyTorch (Hara et al.) ``resnext-101`` files, both the 2018
  release (``resnext-101-kinetics.pth``: ``{"arch": "resnext-101", "state_dict": ...}`` with
  DataParallel's ``module.`` prefix, no BatchNorm ``num_batches_tracked``) and the 2020 code
  (``module.`` prefix gone); vidfer's ``resnext3d_101`` has the same names.
- :data:`C3D_SPORTS1M`: the PyTorch port of C3D Sports-1M (DavideA/c3d-pytorch ``c3d.pickle``,
  a plain state dict ``conv1 ... conv5b, fc6, fc7, fc8``), for ``c3d``.
- :data:`C3D_FEATURES`: the same weights as jfzhang95/pytorch-video-recognition reads them
  (``c3d-pretrained.pth``: ``features.<i>`` and ``classifier.<i>``), for ``c3d``.
- :data:`VGGFACE_DAG`: VGG-Face in the PyTorch conversion ``vgg_face_dag.pth`` (a plain state
  dict ``conv1_1 ... conv5_3, fc6, fc7, fc8``), 2D, inflated into ``i3d_vgg16``; the same table
  with ``fc6`` and ``fc7`` (:data:`VGGFACE_DAG_2D`) fills the ``vgg16`` frame CNN.

A layout also says what input its weights were trained with (:attr:`Layout.input`), which a run
config takes unless it writes its own (:mod:`vidfer.models.contract`).

Hara's ResNets (``arch`` ``resnet-<depth>``, every 2020 ``r3d<depth>_*.pth``) fit no vidfer
model: a ResNet-101 has no grouped convs, and Hara's ResNet-18 has a 7x7x7 stem with a max-pool
where ``resnet3d_18`` (torchvision's ``r3d_18``) has a 3x7x7 stem without; such a file gives one
error naming the difference. The source's classifier is dropped, as for every weights file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from vidfer.errors import CheckpointError
from vidfer.models.contract import VGG_FACE_INPUT, InputContract

HARA = "kenshohara/3D-ResNets-PyTorch"


@dataclass(frozen=True)
class Layout:
    """A published checkpoint layout and how its keys read in vidfer's names.

    Attributes:
        name: The layout, for messages.
        family: The vidfer model whose backbone it fills.
        prefixes: ``(published prefix, vidfer prefix)`` of every backbone key; the rest of a
            key (e.g. ``weight``) is kept.
        classifier: Prefixes of the published classifier, dropped.
        input: The input the weights were trained with (None: not known).
    """

    name: str
    family: str
    prefixes: tuple[tuple[str, str], ...]
    classifier: tuple[str, ...]
    input: InputContract | None = None

    def vidfer_key(self, key: str) -> str | None:
        """``key`` in vidfer's names, or ``None`` if no prefix of the table starts it."""
        for published, ours in self.prefixes:
            if key.startswith(published):
                return ours + key.removeprefix(published)
        return None

    def published_key(self, key: str) -> str:
        """The published name of vidfer's ``key`` (``key`` itself if the table keeps it)."""
        for published, ours in self.prefixes:
            if key.startswith(ours):
                return published + key.removeprefix(ours)
        return key


HARA_RESNEXT = Layout(
    name=f"{HARA} resnext-101",
    family="resnext3d_101",
    # The same names: stem conv1/bn1, blocks layerS.B.{conv,bn}{1,2,3} and downsample.{0,1}.
    prefixes=tuple((p, p) for p in ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")),
    classifier=("fc.", "head."),  # head.: a file of vidfer's resnext3d_101, the same names
)

_C3D_CONVS = ("conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b")
_C3D_FEATURES = (0, 3, 6, 8, 11, 13, 16, 18)  # the convs' indices in c3d's ``features``

C3D_SPORTS1M = Layout(
    name="DavideA/c3d-pytorch C3D Sports-1M (c3d.pickle)",
    family="c3d",
    prefixes=(
        *(
            (f"{conv}.", f"features.{i}.")
            for conv, i in zip(_C3D_CONVS, _C3D_FEATURES, strict=True)
        ),
        ("fc6.", "fc6."),
        ("fc7.", "fc7."),
    ),
    classifier=("fc8.",),
)

C3D_FEATURES = Layout(
    name="jfzhang95/pytorch-video-recognition C3D Sports-1M (c3d-pretrained.pth)",
    family="c3d",
    prefixes=(
        *((f"features.{i}.", f"features.{i}.") for i in _C3D_FEATURES),
        ("classifier.0.", "fc6."),
        ("classifier.3.", "fc7."),
    ),
    classifier=("classifier.6.",),
)


_VGG_CONVS = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
)  # fmt: skip
_VGG_FEATURES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # their indices in ``features``

VGGFACE_DAG = Layout(
    name="VGG-Face (the PyTorch conversion vgg_face_dag.pth of Parkhi et al.'s MatConvNet model)",
    family="i3d_vgg16",
    prefixes=tuple(
        (f"{conv}.", f"features.{i}.") for conv, i in zip(_VGG_CONVS, _VGG_FEATURES, strict=True)
    ),
    classifier=("fc6.", "fc7.", "fc8."),
    input=VGG_FACE_INPUT,
)
"""2D kernels: inflated into the 3D model by :func:`vidfer.models.inflate.inflate_state`. The
conversion reads RGB in 0-255 less the mean (129.186, 104.762, 93.594) with std 1
(:data:`~vidfer.models.contract.VGG_FACE_INPUT`): in vidfer's [0, 1] clips, mean
``[0.5066, 0.4108, 0.3670]`` and std 1/255, which a config takes unless it writes its own."""

VGGFACE_DAG_2D = Layout(
    name=VGGFACE_DAG.name,
    family="vgg16",
    # torchvision's VGG-16 classifier: Linear 0 (fc6), ReLU, Dropout, Linear 3 (fc7), ...
    prefixes=(*VGGFACE_DAG.prefixes, ("fc6.", "classifier.0."), ("fc7.", "classifier.3.")),
    classifier=("fc8.",),
    input=VGG_FACE_INPUT,
)
"""VGG-Face into torchvision's 2D VGG-16 (the ``vgg16`` frame CNN): the conv table of
:data:`VGGFACE_DAG` and the fully connected ``fc6``, ``fc7`` (the conversion flattens ``pool5``
as torchvision does, channels first); ``fc8`` (2622 identities) is the classifier, left new."""


def is_vggface_dag(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a state dict is in the names of ``vgg_face_dag.pth``."""
    return "conv1_1.weight" in state


def _hara_arch(checkpoint: Mapping[str, object], state: Mapping[str, torch.Tensor]) -> str | None:
    """Hara's ``arch`` (e.g. ``resnext-101``) of a state in his names, else ``None``.

    His names are those of vidfer's ``resnext3d_101``; ``arch`` is the file's own if it has one
    (Hara's ``{"arch": ..., "state_dict": ...}``), else told by the first block's convs.
    """
    conv1, block = state.get("conv1.weight"), state.get("layer1.0.conv1.weight")
    if conv1 is None or block is None or conv1.dim() != 5:
        return None
    arch = checkpoint.get("arch")
    if isinstance(arch, str) and arch.startswith(("resnet-", "resnext-")):
        return arch
    if "layer1.0.conv3.weight" not in state:
        return "resnet (basic blocks)"
    conv2 = state.get("layer1.0.conv2.weight")
    grouped = conv2 is not None and conv2.shape[1] != conv2.shape[0]
    return "resnext" if grouped else "resnet (bottlenecks)"


def _hara_misfit(arch: str, conv1: torch.Tensor, family: str) -> str:
    """Why a Hara ResNet file does not fit ``family`` (every vidfer family misses it)."""
    stem = f"{conv1.shape[2]}x7x7 stem conv (conv1.weight {tuple(conv1.shape)})"
    if family == "resnet3d_18":
        return (
            f"Hara's {arch} has a {stem} and a 3x3x3 max-pool (in every published file), "
            "while resnet3d_18 is "
            "torchvision's r3d_18 with a 3x7x7 stem and no max-pool (stem.0.weight (64, 3, 3, "
            "7, 7)), and the 2018 resnet-18/34 files use parameter-free type-A shortcuts; start "
            "resnet3d_18 from model.weights: KINETICS400_V1 instead"
        )
    return (
        f"Hara's {arch} (e.g. the 2020 r3d<depth>_*.pth files) has ungrouped blocks of 64-512 "
        f"channels, not the resnext-101 (32 groups, 128-1024 channels) of resnext3d_101 "
        f"(Hara's resnext-101 files are resnext-101-kinetics*.pth); no vidfer model holds it"
    )


def detect_layout(
    checkpoint: Mapping[str, object], state: Mapping[str, torch.Tensor], family: str, source: str
) -> Layout | None:
    """The published layout of a loaded file, ``None`` if it is not one (vidfer's own names).

    Args:
        checkpoint: The file's top-level mapping (Hara's files wrap the state with ``arch``).
        state: Its state dict, out of ``state_dict`` and without ``module.`` prefixes.
        family: The vidfer model to fill.
        source: The file, for messages.

    Raises:
        CheckpointError: if the layout is published but fits no vidfer model, or another one.
    """
    layout: Layout | None = None
    if is_vggface_dag(state):
        layout = VGGFACE_DAG
    elif "conv3a.weight" in state:
        layout = C3D_SPORTS1M
    elif "classifier.0.weight" in state and "features.18.weight" in state:
        layout = C3D_FEATURES
    elif (arch := _hara_arch(checkpoint, state)) is not None:
        if not arch.startswith("resnext"):
            why = _hara_misfit(arch, state["conv1.weight"], family)
            raise CheckpointError(f"weights {source} cannot be read by {family}: {why}")
        layout = HARA_RESNEXT
    if layout is not None and layout.family != family:
        raise CheckpointError(
            f"weights {source}: a {layout.name} file, for the model {layout.family}, not {family}"
        )
    return layout


def to_vidfer(
    state: Mapping[str, torch.Tensor], layout: Layout, source: str
) -> dict[str, torch.Tensor]:
    """The backbone of ``state`` (in ``layout``) in vidfer's names; the classifier is dropped.

    BatchNorm's ``num_batches_tracked``, absent from files saved before PyTorch 0.4.1 (Hara's
    2018 release), is set to 0 as PyTorch does for such state dicts.

    Raises:
        CheckpointError: naming the keys that are not in the layout's table.
    """
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith(layout.classifier):
            continue
        ours = layout.vidfer_key(key)
        if ours is None:
            unknown.append(key)
        else:
            converted[ours] = value
    if unknown:
        raise CheckpointError(
            f"weights {source}: keys not in the {layout.name} layout: {', '.join(unknown[:5])}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        )
    for key in [k for k in converted if k.endswith(".running_mean")]:
        tracked = key.removesuffix("running_mean") + "num_batches_tracked"
        converted.setdefault(tracked, torch.tensor(0, dtype=torch.long))
    return converted


LAYOUTS = (HARA_RESNEXT, C3D_SPORTS1M, C3D_FEATURES, VGGFACE_DAG)
"""Every published layout a clip model's ``model.weights`` file may be in."""
