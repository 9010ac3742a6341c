"""The face pipeline's options (the ``data.prepare.faces`` mapping of a run config).

They live in the config layer so that the ``data`` section can validate them without importing
the face pipeline; :mod:`vidfer.faces.pipeline` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from vidfer.errors import ConfigError

DetectorName = Literal["mtcnn", "haar"]
MissingPolicy = Literal["drop", "interpolate"]


@dataclass(frozen=True)
class FaceConfig:
    """Options of the face pipeline (part of the prepared store's preprocessing hash).

    Attributes:
        detector: ``"mtcnn"`` (boxes + 5 landmarks) or ``"haar"`` (OpenCV cascade; eye centres).
        size: Side of the square aligned crop in pixels.
        margin: Border around the 5-point template, as a fraction of ``size`` per side.
        grayscale: Keep one gray channel (``C = 1``).
        equalize: Histogram-equalise each crop (Kahou et al.).
        eyes_only: Align from the two eyes only (Xu et al.) instead of all 5 landmarks.
        template: Optional ``(5, 2)`` crop points to align to (e.g. a dataset's
            :func:`~vidfer.faces.align.mean_shape_template` for ``size``/``margin``).
        min_face_size: Smallest face side searched for, in pixels.
        min_score: Detection score that starts the main-face track.
        min_iou: Box overlap that continues the track from frame to frame.
        max_gap: Missed frames after which the track is re-acquired; longest filled gap.
        missing: ``"drop"`` frames without the face, or ``"interpolate"`` their box/landmarks
            between detections.
        min_face_fraction: Below this fraction of frames with a detected face the video is
            ``"no_face"``.
        batch_size: Frames per detector batch (bounds memory on large frames).
    """

    detector: DetectorName = "mtcnn"
    size: int = 112
    margin: float = 0.1
    grayscale: bool = False
    equalize: bool = False
    eyes_only: bool = False
    template: tuple[tuple[float, float], ...] | None = None
    min_face_size: int = 20
    min_score: float = 0.9
    min_iou: float = 0.3
    max_gap: int = 25
    missing: MissingPolicy = "drop"
    min_face_fraction: float = 0.5
    batch_size: int = 32

    def __post_init__(self) -> None:
        def bad(option: str, value: object, need: str) -> ConfigError:
            return ConfigError(f"faces.{option} = {value!r} is invalid: {need}")

        if self.detector not in ("mtcnn", "haar"):
            raise bad("detector", self.detector, "use 'mtcnn' or 'haar'")
        if self.size < 8:
            raise bad("size", self.size, "use at least 8 pixels")
        if not 0 <= self.margin < 0.5:
            raise bad("margin", self.margin, "use a fraction in [0, 0.5)")
        if self.template is not None and (
            len(self.template) not in (2, 5) or any(len(p) != 2 for p in self.template)
        ):
            raise bad("template", self.template, "give 5 (or 2) (x, y) points")
        if self.min_face_size < 12:
            raise bad("min_face_size", self.min_face_size, "use at least 12 pixels")
        if not 0 <= self.min_score <= 1 or not 0 < self.min_iou <= 1:
            raise bad("min_score/min_iou", (self.min_score, self.min_iou), "use values in [0, 1]")
        if self.max_gap < 0:
            raise bad("max_gap", self.max_gap, "use 0 or more frames")
        if self.missing not in ("drop", "interpolate"):
            raise bad("missing", self.missing, "use 'drop' or 'interpolate'")
        if not 0 <= self.min_face_fraction <= 1:
            raise bad("min_face_fraction", self.min_face_fraction, "use a fraction in [0, 1]")
        if self.batch_size < 1:
            raise bad("batch_size", self.batch_size, "use 1 or more frames")

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-able dict (for config hashes and metadata)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.template is not None:
            out["template"] = [list(p) for p in self.template]
        return out
