"""The ``data`` section: manifest, prepared store, preprocessing and the face pipeline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    field_validator,
)

from vidfer.config.base import Section
from vidfer.config.faces import KEYFRAMES_VERSION, FaceConfig, device_name
from vidfer.errors import ConfigError


def face_config(options: dict[str, Any]) -> FaceConfig:
    """Build the face pipeline's options from a config mapping.

    Raises:
        ValueError: naming the unknown or invalid option (pydantic reports it under its section).
    """
    try:
        return FaceConfig.model_validate(options)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"faces.{where}: {first['msg']}") from None


class LimitsConfig(Section):
    """Limits on untrusted video files.

    The size, resolution, duration and frame count are checked from probed metadata before
    decoding. Decoding runs in worker processes (:mod:`vidfer.io.sandbox`): a video whose decoding
    crashes its worker, spends longer than ``decode_timeout_s`` on a piece or needs more than
    ``decode_memory_mb`` is quarantined (status ``crashed``, ``timeout``, ``out_of_memory``).

    Attributes:
        max_file_mb: Largest file in MB (a frame folder: its images' total size).
        max_width: Largest frame width in pixels.
        max_height: Largest frame height in pixels.
        max_duration_s: Longest duration in seconds.
        max_frames: Most frames in a video.
        decode_timeout_s: Longest time a video's preparation may take for one piece of its
            frames (decode, faces, write; the limit starts again after each piece, so a long
            valid video is not stopped for its length, a hung one is); in ``vidfer predict``,
            to decode one piece (``eval.chunk_frames`` frames).
        decode_memory_mb: Memory one video's preparation may take in its worker (address space,
            beyond the worker's own); None: no limit.
        keep_truncated: Keep the frames decoded before the end of a file that was cut short
            (else the video is rejected as ``truncated``).
    """

    max_file_mb: float = Field(4096, gt=0)
    max_width: int = Field(8192, gt=0)
    max_height: int = Field(8192, gt=0)
    max_duration_s: float = Field(4 * 3600, gt=0)
    max_frames: int = Field(500_000, gt=0)
    decode_timeout_s: float = Field(1800, gt=0)
    decode_memory_mb: int | None = Field(8192, gt=0)
    keep_truncated: bool = False


class PrepareConfig(Section):
    """How raw videos become stored frames. Part of the store key: changing it re-prepares.

    Attributes:
        size: Frames are resized so that their short side is ``size``.
        crop: Center-crop to ``size`` x ``size`` after the resize.
        fps: Target frame rate (source frames nearest to each target time); None keeps all.
        max_frames: Keep at most this many frames per video (None: all).
        min_frames: Videos with fewer decoded frames are rejected as ``too_short``.
        grayscale: Convert to grayscale (stored as 3 identical channels so every model accepts it).
        faces: Options of the face pipeline (:class:`vidfer.config.faces.FaceConfig`); when set,
            the stored frames are the aligned crops of the main face (``faces.size`` square) and
            ``size``/``crop`` only apply without it. ``{}`` uses the defaults (MTCNN, 112 px).
    """

    size: int = Field(112, ge=8, le=1024)
    crop: bool = True
    fps: float | None = Field(None, gt=0)
    max_frames: int | None = Field(None, gt=0)
    min_frames: int = Field(1, ge=1)
    grayscale: bool = False
    faces: dict[str, Any] | None = None

    @field_validator("faces")
    @classmethod
    def _valid_faces(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            face_config(value)
        return value

    def face_config(self) -> FaceConfig | None:
        """The face pipeline's options, or None when faces are not used."""
        return None if self.faces is None else face_config(self.faces)

    def with_face_device(self, device: str | None) -> PrepareConfig:
        """These settings with the face detector on ``device`` (``faces.device``; the same
        store key); unchanged when ``device`` is None or faces are not used.

        Raises:
            ConfigError: if ``device`` is not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        """
        if device is None or self.faces is None:
            return self
        try:
            device_name(device)
        except ValueError as error:
            raise ConfigError(f"device: {error}") from None
        return self.model_copy(update={"faces": {**self.faces, "device": device}})

    def stored_settings(self) -> dict[str, Any]:
        """The settings that make the stored frames: all of them, the ``faces`` mapping as
        written, but for ``faces.device`` (where the detector ran: a store prepared on the CPU
        serves a GPU run and the other way round), and with keyframe face detection the
        tracker's version (``faces.keyframes``: :data:`~vidfer.config.faces.KEYFRAMES_VERSION`),
        so that a store prepared by an earlier tracker is prepared again."""
        settings = self.model_dump()
        faces = self.face_config()
        if settings["faces"] is not None and faces is not None:
            settings["faces"] = {k: v for k, v in settings["faces"].items() if k != "device"}
            if faces.detector == "mtcnn" and faces.detect_every > 1:
                settings["faces"]["keyframes"] = KEYFRAMES_VERSION
        return settings

    def key(self) -> str:
        """Short stable hash of the preprocessing settings (the store's second key):
        :meth:`stored_settings`, so that ``faces.device`` does not change it."""
        payload = json.dumps(self.stored_settings(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]


class DataConfig(Section):
    """The dataset: manifest, store location, classes and preprocessing.

    Attributes:
        manifest: The manifest CSV (``path,label`` and the optional columns); a relative path is
            relative to the config's folder.
        root: The folder the manifest's paths are relative to and must stay inside (None: the
            manifest's folder).
        store: The prepared store (None: ``.vidfer_store/`` beside the manifest).
        classes: The class names in order; a manifest label not among them is an error (None:
            the manifest's labels, sorted).
        prepare: How videos become stored frames.
        limits: Limits on untrusted video files.
        workers: Sandboxed worker processes decoding videos in preparation.
        max_reject_fraction: Preparation fails when more than this share of the videos is
            rejected.
        frame_folder_fps: The frame rate of the manifest's frame folders (a row whose path is a
            folder of images: :mod:`vidfer.io.frame_folder`), which the images do not state.
            The default 25 (``vidfer.io.frame_folder.FRAME_FOLDER_FPS``) is Oulu-CASIA's and the
            rate vidfer has always given UNBC-McMaster's frames; CK+ was filmed at 30. It times the
            frames (``data.prepare.fps``, ``start``/``end``, timelines) and is part of a frame
            folder's store key.
    """

    manifest: Path
    root: Path | None = None
    store: Path | None = None
    classes: list[str] | None = None
    prepare: PrepareConfig = PrepareConfig()
    limits: LimitsConfig = LimitsConfig()
    workers: int = Field(2, ge=1)
    max_reject_fraction: float = Field(0.5, ge=0, le=1)
    frame_folder_fps: float = Field(25.0, gt=0)

    @property
    def dataset_root(self) -> Path:
        """Folder that manifest paths are relative to and must stay inside."""
        return self.root if self.root is not None else self.manifest.parent

    @property
    def store_root(self) -> Path:
        """Prepared-store folder (default: ``.vidfer_store`` beside the manifest)."""
        return self.store if self.store is not None else self.manifest.parent / ".vidfer_store"
