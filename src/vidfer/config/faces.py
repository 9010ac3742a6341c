"""The face pipeline's options (the ``data.prepare.faces`` mapping of a run config).

A section like the others, validated where the ``data`` section is; the ``faces`` mapping itself
is kept as written in the config (it is part of the prepared store's key, but for ``device``).
:mod:`vidfer.faces.pipeline` reads them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from vidfer.config.base import Section

DetectorName = Literal["mtcnn", "haar"]
DATASET_MEAN = "dataset_mean"
MissingPolicy = Literal["drop", "interpolate"]
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
"""The devices a face detector may be asked for (names :func:`vidfer.device.resolve_device`
resolves)."""
DEVICE_OPTION = "data.prepare.faces.device"
"""The option that names the face detector's device, in its errors."""
# The keyframe tracker's version (vidfer.faces.keyframes), part of a prepared store's key when
# faces are detected every few frames: 2 follows landmarks checked forwards and backwards and
# detects in full every 16 frames by default (1: unchecked flow, every 8; no key entry).
KEYFRAMES_VERSION = 2


def device_name(value: str) -> str:
    """``value``, if it names a device a face detector may be asked for.

    Raises:
        ValueError: naming the choices.
    """
    if not DEVICE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a device; use auto, cpu, cuda or cuda:N")
    return value


class FaceConfig(Section):
    """Options of the face pipeline (part of the prepared store's preprocessing hash, but for
    ``device``).

    Attributes:
        detector: ``"mtcnn"`` (boxes + 5 landmarks) or ``"haar"`` (OpenCV cascade; eye centres).
        size: Side of the square aligned crop in pixels.
        margin: Border around the 5-point template, as a fraction of ``size`` per side.
        grayscale: Keep one gray channel (``C = 1``).
        equalize: Histogram-equalise each crop (Kahou et al.).
        eyes_only: Align from the two eyes only (Xu et al.) instead of all 5 landmarks.
        template: Optional ``(5, 2)`` crop points to align to, or ``"dataset_mean"``: Kahou et
            al.'s dataset mean shape, computed by ``vidfer prepare`` in a first pass over the
            dataset's detected faces (:mod:`vidfer.data.face_template`) and kept with the
            prepared store, so that a resumed preparation and ``vidfer predict`` use it too.
        min_face_size: Smallest face side searched for, in pixels.
        min_score: Detection score that starts the main-face track.
        min_iou: Box overlap that continues the track from frame to frame.
        max_gap: Missed frames after which the track is re-acquired; longest filled gap.
        missing: ``"drop"`` frames without the face, or ``"interpolate"`` their box/landmarks
            between detections.
        min_face_fraction: Below this fraction of frames with a detected face the video is
            ``"no_face"``.
        batch_size: Frames per detector batch (bounds memory on large frames).
        detect_every: Frames per full face detection; the faces found are carried through the
            frames between by re-detection around their boxes moved by Lucas-Kanade optical
            flow (MTCNN's full cascade in a region around a small face, O-Net alone on a large
            one), with a fresh full detection where a face moves fast or O-Net alone loses it (see
            :class:`vidfer.faces.keyframes.KeyframeDetector`). 1 detects every frame; the Haar
            detector always does.
        device: Where MTCNN runs: ``"auto"`` (CUDA when there is a GPU, else the CPU),
            ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; the Haar detector (OpenCV) always runs on the
            CPU. Not part of the prepared store's key: a store prepared on the CPU is reused on
            a GPU and the other way round. ``vidfer prepare --device`` and ``vidfer predict
            --device`` set it for one command.
    """

    detector: DetectorName = "mtcnn"
    size: int = Field(112, ge=8)
    margin: float = Field(0.1, ge=0, lt=0.5)
    grayscale: bool = False
    equalize: bool = False
    eyes_only: bool = False
    template: tuple[tuple[float, float], ...] | Literal["dataset_mean"] | None = None
    min_face_size: int = Field(20, ge=12)
    min_score: float = Field(0.9, ge=0, le=1)
    min_iou: float = Field(0.3, gt=0, le=1)
    max_gap: int = Field(25, ge=0)
    missing: MissingPolicy = "drop"
    min_face_fraction: float = Field(0.5, ge=0, le=1)
    batch_size: int = Field(32, ge=1)
    detect_every: int = Field(16, ge=1)
    device: str = "auto"

    @field_validator("template")
    @classmethod
    def _five_or_two_points(
        cls, value: tuple[tuple[float, float], ...] | str | None
    ) -> tuple[tuple[float, float], ...] | str | None:
        if isinstance(value, tuple) and len(value) not in (2, 5):
            raise ValueError("give 5 (or 2) (x, y) points")
        return value

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        return device_name(value)

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-able dict (for config hashes and metadata)."""
        return self.model_dump(mode="json")
