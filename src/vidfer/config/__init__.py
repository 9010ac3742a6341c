"""Validated configuration for every stage (pydantic, ``extra="forbid"`` so typos fail early).

A run is described by one YAML file whose sections mirror the data flow: ``data`` (manifest, store,
preprocessing), ``sampler`` (which frames), ``transforms`` (augmentation), ``model``, ``pooling``,
``optim``, ``train`` and ``eval``. Paths in the file are relative to the file's folder.

The sections live in ``data``, ``model`` (clip models) and ``frames`` (frame pipelines and the
sparse auto-encoder); this module holds the whole run and the YAML loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from vidfer.config.base import Section
from vidfer.config.data import DataConfig, LimitsConfig, PrepareConfig, face_config
from vidfer.config.frames import (
    ActivityConfig,
    AutoEncoderConfig,
    ClassifierConfig,
    ExtractorConfig,
    FramesConfig,
    SparseAEConfig,
)
from vidfer.config.model import (
    AttentionConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    PoolingConfig,
    SamplerConfig,
    TrainConfig,
    TransformConfig,
    ViewsConfig,
)
from vidfer.config.protocol import ProtocolConfig
from vidfer.errors import ConfigError

__all__ = [
    "ActivityConfig",
    "AttentionConfig",
    "AutoEncoderConfig",
    "ClassifierConfig",
    "DataConfig",
    "EvalConfig",
    "ExtractorConfig",
    "FramesConfig",
    "LimitsConfig",
    "ModelConfig",
    "OptimConfig",
    "PoolingConfig",
    "PrepareConfig",
    "ProtocolConfig",
    "RunConfig",
    "SamplerConfig",
    "SparseAEConfig",
    "TrainConfig",
    "TransformConfig",
    "ViewsConfig",
    "apply_override",
    "config_to_dict",
    "face_config",
    "load_config",
    "parse_config",
]


class RunConfig(Section):
    """Everything ``vidfer train`` needs.

    With ``frames`` set, the run is a frame-feature pipeline: the ``sampler``, ``transforms``,
    ``model``, ``pooling`` and ``eval`` sections do not apply (``optim`` and ``train`` drive the
    sequence models). With ``sparse_ae`` set, the run is Baccouche et al.'s sparse
    auto-encoder + BLSTM (:class:`SparseAEConfig`), with the same sections not applying; with
    ``activity`` set, Kahou et al.'s activity modality (:class:`ActivityConfig`): the same
    auto-encoder, a bag of words and an SVM.
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
    activity: ActivityConfig | None = None
    protocol: ProtocolConfig | None = None  # how `vidfer experiment` makes folds

    @model_validator(mode="after")
    def _one_pipeline(self) -> RunConfig:
        given = [name for name in ("frames", "sparse_ae", "activity") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"give one of the sections {given}, not several")
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
