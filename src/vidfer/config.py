"""Validated configuration for every stage (pydantic, ``extra="forbid"`` so typos fail early).

A run is described by one YAML file whose sections mirror the data flow: ``data`` (manifest, store,
preprocessing), ``sampler`` (which frames), ``transforms`` (augmentation), ``model``, ``pooling``,
``optim``, ``train`` and ``eval``. Paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from vidfer.errors import ConfigError
from vidfer.faces.pipeline import FaceConfig


def face_config(options: dict[str, Any]) -> FaceConfig:
    """Build the face pipeline's options from a config mapping.

    Raises:
        ValueError: naming the unknown or invalid option (pydantic reports it under its section).
    """
    known = {f.name for f in fields(FaceConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown face option(s) {unknown}; known: {sorted(known)}")
    if isinstance(options.get("template"), list):
        options = {**options, "template": tuple(tuple(p) for p in options["template"])}
    try:
        return FaceConfig(**options)
    except ConfigError as error:
        raise ValueError(str(error)) from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsConfig(_Section):
    """Limits on untrusted video files, checked from probed metadata before decoding."""

    max_file_mb: float = Field(4096, gt=0)
    max_width: int = Field(8192, gt=0)
    max_height: int = Field(8192, gt=0)
    max_duration_s: float = Field(4 * 3600, gt=0)
    max_frames: int = Field(500_000, gt=0)


class PrepareConfig(_Section):
    """How raw videos become stored frames. Part of the store key: changing it re-prepares.

    Attributes:
        size: Frames are resized so that their short side is ``size``.
        crop: Center-crop to ``size`` x ``size`` after the resize.
        fps: Target frame rate (source frames nearest to each target time); None keeps all.
        max_frames: Keep at most this many frames per video (None: all).
        min_frames: Videos with fewer decoded frames are rejected as ``too_short``.
        grayscale: Convert to grayscale (stored as 3 identical channels so every model accepts it).
        faces: Options of the face pipeline (:class:`vidfer.faces.pipeline.FaceConfig`); when set,
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

    def key(self) -> str:
        """Short stable hash of the preprocessing settings (the store's second key)."""
        payload = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]


class DataConfig(_Section):
    """The dataset: manifest, store location, classes and preprocessing."""

    manifest: Path
    root: Path | None = None
    store: Path | None = None
    classes: list[str] | None = None
    prepare: PrepareConfig = PrepareConfig()
    limits: LimitsConfig = LimitsConfig()
    workers: int = Field(2, ge=1)
    max_reject_fraction: float = Field(0.5, ge=0, le=1)

    @property
    def dataset_root(self) -> Path:
        """Folder that manifest paths are relative to and must stay inside."""
        return self.root if self.root is not None else self.manifest.parent

    @property
    def store_root(self) -> Path:
        """Prepared-store folder (default: ``.vidfer_store`` beside the manifest)."""
        return self.store if self.store is not None else self.manifest.parent / ".vidfer_store"


class SamplerConfig(_Section):
    """A clip sampler from the registry and its parameters."""

    name: str = "uniform"
    clip_len: int = Field(16, ge=1)
    stride: int = Field(1, ge=1)
    num_clips: int = Field(1, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class TransformConfig(_Section):
    """Clip augmentation (applied identically to every frame of a clip) and normalisation."""

    size: int = Field(112, ge=8)
    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip: float = Field(0.5, ge=0, le=1)
    rotation: float = Field(0.0, ge=0, le=180)
    color_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    mean: tuple[float, ...] = (0.43216, 0.394666, 0.37645)
    std: tuple[float, ...] = (0.22803, 0.22145, 0.216989)

    @field_validator("crop_scale")
    @classmethod
    def _scale_order(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high <= 1:
            raise ValueError("crop_scale must satisfy 0 < low <= high <= 1")
        return value


class AttentionConfig(_Section):
    """An attention module between the model's features and its classifier."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Section):
    """A model from the registry; ``params`` go to its builder; optional ``attention`` module."""

    name: str = "resnet3d_18"
    params: dict[str, Any] = Field(default_factory=dict)
    attention: AttentionConfig | None = None


class PoolingConfig(_Section):
    """Temporal pooling of the score map into video scores."""

    name: str = "avg"
    params: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(_Section):
    """Optimiser with separate learning rate and weight decay for backbone and head."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    head_lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    head_weight_decay: float | None = Field(None, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["none", "cosine", "step"] = "cosine"
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: int = Field(0, ge=0)


class TrainConfig(_Section):
    """The training loop."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    accumulate: int = Field(1, ge=1)
    clip_grad: float | None = Field(None, gt=0)
    patience: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0)
    device: str = "auto"
    amp: bool = True
    deterministic: bool = True
    # Videos (video_id) plotted at the end: a learning sampler's sampling maps (training videos)
    # and an attention module's maps (held-out videos); empty: the first four of each.
    plot_videos: list[str] = Field(default_factory=list)


class ViewsConfig(_Section):
    """Multi-view testing (``eval.mode: views``; FstCN §2.4)."""

    clips: int = Field(5, ge=1)  # evenly spaced clips (pairs) per video, from the run's sampler
    crops: Literal[1, 9] = 9  # centre crop, or the 3x3 grid of crops
    flip: bool = True  # and their horizontal flips
    resize: int | None = Field(None, ge=8)  # short side before cropping (None: as stored)
    view_fusion: Literal["sci", "mean"] = "sci"  # over the crops of one clip (eq. 6)
    clip_fusion: Literal["max", "mean"] = "max"  # over the clips (eq. 7)


class EvalConfig(_Section):
    """Whole-video evaluation.

    Attributes:
        mode: ``dense`` scores each video in one pass when the model allows it, ``windows`` slides
            a clip of ``clip_len`` frames with ``stride`` over the video, ``views`` scores
            evenly spaced clips from the run's sampler in several crops and fuses them
            (``views``).
        clip_len: Window length for ``windows`` mode (and the minimum input length).
        stride: Window step for ``windows`` mode.
        batch_size: Windows per forward pass in ``windows`` mode.
        pooling: Video-level temporal pooling at test time (e.g. ``softmax`` with ``gamma``, the
            thesis's ``gamma_p``); None pools with the trained model's own pooling. Only
            poolings without learned parameters are accepted here.
    """

    mode: Literal["dense", "windows", "views"] = "dense"
    clip_len: int = Field(16, ge=1)
    stride: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    pooling: PoolingConfig | None = None
    views: ViewsConfig = Field(default_factory=ViewsConfig)


class ExtractorConfig(_Section):
    """One source of per-frame (or per-clip) features for a frame-feature pipeline.

    Exactly one of ``cnn`` (a frame CNN by name, e.g. the FER2013-pretrained
    ``mini_xception``), ``frame_run`` (a ``vidfer train-frames`` run folder), ``video_run``
    (a ``vidfer train`` run of a 3D model, e.g. C3D: its backbone features per time step) or
    ``audio: is10`` (the video file's sound: openSMILE's 1582 IS10 paralinguistic features, one
    step per video; videos without sound are a missing modality).

    Attributes:
        layer: Frame CNN layer whose output is the feature (its ``feature_layers`` names, e.g.
            ``conv2``, ``fc6``, ``features``, ``logits``); ignored for ``video_run``.
        spatial: ``avg`` averages a convolutional map over space, ``flatten`` keeps it whole
            (Kahou's IRNN input: the second conv block after pooling).
        batch_size: Frames per forward pass.
    """

    cnn: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    frame_run: Path | None = None
    video_run: Path | None = None
    audio: Literal["is10"] | None = None
    layer: str = "features"
    spatial: Literal["avg", "flatten"] = "avg"
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> ExtractorConfig:
        sources = (self.cnn, self.frame_run, self.video_run, self.audio)
        if sum(v is not None for v in sources) != 1:
            raise ValueError("give exactly one of cnn, frame_run, video_run or audio")
        return self


class ClassifierConfig(_Section):
    """The video classifier over frame features.

    Names: ``average`` (mean of the per-frame class probabilities of a ``logits`` extractor,
    nothing learned), ``linear_svm`` (one-vs-rest linear SVM), ``rbf_svm`` (one-vs-rest RBF
    SVM) -- both over aggregated features, with C (and gamma) chosen on the validation split
    and probabilities calibrated -- and ``irnn``, ``lstm``, ``bilstm`` (sequence models over the
    per-frame features, trained with the ``optim`` and ``train`` sections).
    """

    name: Literal["average", "linear_svm", "rbf_svm", "irnn", "lstm", "bilstm"]
    params: dict[str, Any] = Field(default_factory=dict)


class FramesConfig(_Section):
    """A frame-feature pipeline (Kahou et al., Xu et al.) instead of an end-to-end 3D model.

    Attributes:
        extractors: Feature sources; their aggregates (or per-frame features) are concatenated.
        normalise: ``ssr_l2``: signed square root then L2 normalisation of every frame's
            features (Xu), per extractor, before aggregation.
        aggregate: Video vector for the SVMs: ``mean``, ``mean_var`` (Xu) or ``kbin`` (Kahou's
            k-bin average pooling with ``bins`` bins).
        bins: k of ``kbin`` (Kahou: 15).
        pca: SVMs only: project the standardised video vectors on this many principal
            components of the training videos, whitened (Kahou's audio: PCA, then RBF SVM).
        sequence_length: Sequence models only: train on a random ordered subset of this many
            frames per video and epoch (Xu: 128), test on as many evenly spaced frames; None
            uses every frame.
        classifier: The video classifier.
    """

    extractors: list[ExtractorConfig] = Field(min_length=1)
    normalise: Literal["none", "ssr_l2"] = "none"
    aggregate: Literal["mean", "mean_var", "kbin"] = "mean"
    bins: int = Field(15, ge=1)
    pca: int | None = Field(None, ge=1)
    sequence_length: int | None = Field(None, ge=1)
    classifier: ClassifierConfig


class SparseAEConfig(_Section):
    """Baccouche et al. (2012): a spatio-temporal sparse auto-encoder, then a BLSTM.

    The auto-encoder learns from ``patch`` x ``patch`` x ``depth`` gray patches of the training
    videos that move (motion selection); each video then becomes one vector per space-time block
    (the sparse codes of the block's grid of patches), classified by a bidirectional LSTM trained
    with the ``optim`` and ``train`` sections.

    Attributes:
        patch: Spatial size M of a patch (paper: 8).
        depth: Temporal size T of a patch (paper: 3).
        codes: Code size N (paper: 192 on KTH, 128 on GEMEP-FERA).
        eta: eta of the sparsifying logistic, eq. 1 (paper: 0.02).
        beta: beta of the sparsifying logistic, eq. 1 (paper: 1.5).
        shift_search: Search the shift t* in [-M/4, M/4]^2 x [-T/2, T/2] from the second epoch.
        motion_pixel: A pixel moves when its first and last frames in the patch differ by more
            than this (intensities in [0, 1]).
        motion_share: Keep patches whose share of moving pixels exceeds this.
        patches_per_video: At most this many training patches from each training video.
        epochs: Passes over the training patches (online, one patch at a time).
        encoder_lr: Step of the encoder's update towards the optimal code.
        decoder_lr: Step of the decoder's update towards the (shifted) patch.
        code_steps: Steepest-descent steps on the code Z (eq. 4).
        code_lr: Step size of that descent.
        dz: The finite difference dZ of eq. 6.
        frame_size: ``(H, W)``: centre crop of the stored frames (e.g. 54 x 34 on KTH); None
            keeps them whole.
        block_stride: Frames between consecutive space-time blocks (None: ``depth``, blocks
            side by side).
        hidden: LSTM units per direction (paper: 5).
        grayscale: Gray patches (the paper's); false keeps the three colour channels, for
            data whose classes show in colour only (D = 3 T M M).
    """

    patch: int = Field(8, ge=2)
    depth: int = Field(3, ge=2)
    codes: int = Field(192, ge=1)
    eta: float = Field(0.02, gt=0, lt=1)
    beta: float = Field(1.5, gt=0)
    shift_search: bool = True
    motion_pixel: float = Field(0.1, gt=0, lt=1)
    motion_share: float = Field(0.1, ge=0, lt=1)
    patches_per_video: int = Field(100, ge=1)
    epochs: int = Field(3, ge=1)
    encoder_lr: float = Field(0.001, gt=0)
    decoder_lr: float = Field(0.02, gt=0)
    code_steps: int = Field(10, ge=0)
    code_lr: float = Field(0.02, gt=0)
    dz: float = Field(0.001, gt=0)
    frame_size: tuple[int, int] | None = None
    block_stride: int | None = Field(None, ge=1)
    hidden: int = Field(5, ge=1)
    grayscale: bool = True

    @model_validator(mode="after")
    def _frame_holds_a_patch(self) -> SparseAEConfig:
        if self.frame_size is not None and min(self.frame_size) < self.patch:
            raise ValueError(f"frame_size {list(self.frame_size)} is smaller than a patch")
        return self


class RunConfig(_Section):
    """Everything ``vidfer train`` needs.

    With ``frames`` set, the run is a frame-feature pipeline: the ``sampler``, ``transforms``,
    ``model``, ``pooling`` and ``eval`` sections do not apply (``optim`` and ``train`` drive the
    sequence models). With ``sparse_ae`` set, the run is Baccouche et al.'s sparse
    auto-encoder + BLSTM (:class:`SparseAEConfig`), with the same sections not applying.
    """

    seed: int = 0
    data: DataConfig
    sampler: SamplerConfig = SamplerConfig()
    transforms: TransformConfig = TransformConfig()
    model: ModelConfig = ModelConfig()
    pooling: PoolingConfig = PoolingConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    frames: FramesConfig | None = None
    sparse_ae: SparseAEConfig | None = None

    @model_validator(mode="after")
    def _one_pipeline(self) -> RunConfig:
        if self.frames is not None and self.sparse_ae is not None:
            raise ValueError("give either a frames or a sparse_ae section, not both")
        return self


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("manifest", "root", "store"):
            value = data.get(key)
            if isinstance(value, str) and not Path(value).is_absolute():
                data[key] = str(base / value)
    frames = raw.get("frames")
    if isinstance(frames, dict) and isinstance(frames.get("extractors"), list):
        for extractor in frames["extractors"]:
            for key in ("frame_run", "video_run"):
                value = extractor.get(key) if isinstance(extractor, dict) else None
                if isinstance(value, str) and not Path(value).is_absolute():
                    extractor[key] = str(base / value)
    return raw


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{source}: option '{where}': {first['msg']}{more}"


def parse_config(raw: object, *, source: str = "config", base: Path | None = None) -> RunConfig:
    """Validate a config mapping.

    Args:
        raw: The parsed YAML (a mapping).
        source: Name used in error messages (usually the file path).
        base: Folder that relative data paths are resolved against.

    Raises:
        ConfigError: naming the first bad option, e.g. ``cfg.yaml: option 'train.epochs': ...``.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    if base is not None:
        raw = _resolve_paths(json.loads(json.dumps(raw, default=str)), base)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a YAML run config.

    Args:
        path: The YAML file.
        overrides: ``section.key=value`` strings (value parsed as YAML), applied before validation.

    Raises:
        ConfigError: on unreadable YAML, a bad override or an invalid option.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for item in overrides or []:
        apply_override(raw, item)
    return parse_config(raw, source=str(path), base=path.parent)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a nested mapping (value parsed as YAML).

    A numeric part indexes a list: ``frames.extractors.0.frame_run=runs/cnn``.
    """
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected section.key=value")
    node: Any = raw
    *parents, leaf = key.split(".")
    for part in parents:
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {item!r}: no item {part!r} in that list")
            node = node[int(part)]
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, dict | list):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node = child
    if not isinstance(node, dict):
        raise ConfigError(f"override {item!r}: {'.'.join(parents)!r} is not a section")
    node[leaf] = yaml.safe_load(value)


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """JSON-able dict of a config (paths as strings), for run folders."""
    return json.loads(config.model_dump_json())
