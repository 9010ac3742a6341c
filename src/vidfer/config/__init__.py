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
from typing import Any, Literal, TypeVar

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
from vidfer.config.steps import FrameTrainSettings, VideoAttentionSettings
from vidfer.errors import ConfigError

__all__ = [
    "KIND_NAMES",
    "ActivityConfig",
    "AttentionConfig",
    "AutoEncoderConfig",
    "ClassifierConfig",
    "DataConfig",
    "EvalConfig",
    "ExtractorConfig",
    "FrameTrainSettings",
    "FramesConfig",
    "LimitsConfig",
    "ModelConfig",
    "OptimConfig",
    "PoolingConfig",
    "PrepareConfig",
    "ProtocolConfig",
    "RunConfig",
    "RunKind",
    "SamplerConfig",
    "SparseAEConfig",
    "TrainConfig",
    "TransformConfig",
    "VideoAttentionSettings",
    "ViewsConfig",
    "apply_override",
    "config_to_dict",
    "face_config",
    "load_config",
    "parse_config",
    "parse_section",
    "read_yaml_mapping",
]


RunKind = Literal["clip", "frames", "sparse_ae", "activity"]
"""The kinds of run: a clip model trained end to end, a frame-feature pipeline, Baccouche et
al.'s sparse auto-encoder + BLSTM, Kahou et al.'s activity bag of words."""

KIND_NAMES: dict[str, str] = {
    "clip": "3D clip model",
    "frames": "frame-feature pipeline",
    "sparse_ae": "sparse auto-encoder",
    "activity": "activity (bag of words)",
}
"""A readable name of each kind, for messages."""


NOT_FOR_KIND: dict[str, tuple[str, ...]] = {
    "clip": (),
    "frames": ("sampler", "transforms", "model", "pooling"),
    "sparse_ae": ("sampler", "transforms", "model", "pooling"),
    "activity": ("sampler", "transforms", "model", "pooling", "optim"),
}
"""The sections each kind of run does not read (``data``, ``train`` and ``eval`` apply to all:
``eval.chunk_frames`` sets the pieces ``vidfer predict`` reads)."""

_KIND_SECTIONS = ("frames", "sparse_ae", "activity")


class RunConfig(Section):
    """Everything ``vidfer train`` needs.

    ``kind`` says what the run is (:data:`RunKind`); when it is left out it follows from the
    section given: ``frames`` for a frame-feature pipeline, ``sparse_ae`` for Baccouche et al.'s
    sparse auto-encoder + BLSTM (:class:`SparseAEConfig`), ``activity`` for Kahou et al.'s
    activity modality (:class:`ActivityConfig`), none of them for a clip model. A section the
    kind does not read (:data:`NOT_FOR_KIND`) is an error naming it. ``eval.clip_len`` follows
    from ``sampler.clip_len`` unless given.
    """

    seed: int = 0
    kind: RunKind = "clip"
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

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, raw: Any) -> Any:
        """Fill in the kind from the section given, and ``eval.clip_len`` from the sampler's."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        given = [name for name in _KIND_SECTIONS if raw.get(name) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of the sections {given}, not several")
        if raw.get("kind") is None:
            raw["kind"] = given[0] if given else "clip"
        sampler, evaluation = raw.get("sampler", {}), raw.get("eval", {})
        if (
            isinstance(sampler, dict)
            and isinstance(evaluation, dict)
            and "clip_len" in sampler
            and "clip_len" not in evaluation
        ):
            raw["eval"] = {**evaluation, "clip_len": sampler["clip_len"]}
        return raw

    @model_validator(mode="after")
    def _sections_fit_the_kind(self) -> RunConfig:
        found = next((name for name in _KIND_SECTIONS if getattr(self, name) is not None), "clip")
        if found != self.kind:
            needs = (
                "no frames, sparse_ae or activity section"
                if self.kind == "clip"
                else (f"a {self.kind!r} section")
            )
            has = "none" if found == "clip" else f"a {found!r} section"
            raise ValueError(f"option 'kind': {self.kind!r} needs {needs}; the config has {has}")
        for name in NOT_FOR_KIND[self.kind]:
            section = getattr(self, name)
            if name in self.model_fields_set and section != type(section)():
                raise ValueError(
                    f"section {name!r} does not apply to a {KIND_NAMES[self.kind]} run "
                    f"(kind {self.kind!r}); remove it"
                )
        return self

    @model_validator(mode="after")
    def _feature_level_pools_by_average(self) -> RunConfig:
        """``model.pooling_level: feature`` averages features: only ``avg`` pools its scores.

        In training its score map has one step per clip (every pooling would be the identity
        and a learned one would never learn); on whole videos the average of the per-step scores
        is the classifier of the averaged features, which no other pooling would be.
        """
        if self.kind != "clip" or self.model.pooling_level != "feature":
            return self
        chosen = [("pooling.name", self.pooling.name)]
        if self.eval.pooling is not None:
            chosen.append(("eval.pooling.name", self.eval.pooling.name))
        for option, name in chosen:
            if name != "avg":
                raise ValueError(
                    f"model.pooling_level 'feature' averages the features over time before the "
                    f"classifier, so {option} must be 'avg' (got {name!r}); set {option}: avg "
                    f"or model.pooling_level: score"
                )
        return self


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("manifest", "root", "store"):
            value = data.get(key)
            if isinstance(value, str) and not Path(value).is_absolute():
                data[key] = str(base / value)
    model = raw.get("model")
    if isinstance(model, dict):
        weights = model.get("weights")
        if (
            isinstance(weights, str)
            and not Path(weights).is_absolute()
            and (base / weights).exists()
        ):
            model["weights"] = str(base / weights)  # a file or run folder beside the config
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
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    if not first["loc"]:  # a check across sections: its message names them
        return f"{source}: {first['msg'].removeprefix('Value error, ')}{more}"
    where = ".".join(str(part) if str(part).isprintable() else repr(part) for part in first["loc"])
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


S = TypeVar("S", bound=Section)


def parse_section(section: type[S], raw: object, *, source: str) -> S:
    """Validate one section on its own (e.g. a command's settings).

    Raises:
        ConfigError: naming the first bad option, e.g. ``train-frames: option 'epochs': ...``.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of options")
    try:
        return section.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping.

    Raises:
        ConfigError: if the file is missing, not YAML, or not a mapping (naming the line).
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
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a YAML run config.

    Args:
        path: The YAML file.
        overrides: ``section.key=value`` strings (value parsed as YAML), applied before validation.

    Raises:
        ConfigError: on unreadable YAML, a bad override or an invalid option.
    """
    path = Path(path)
    raw = read_yaml_mapping(path)
    for item in overrides or []:
        apply_override(raw, item)
    # Absolute: a run folder records the resolved config and is read from anywhere.
    return parse_config(raw, source=str(path), base=path.absolute().parent)


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
    """JSON-able dict of a config (paths as strings), for run folders: the sections its kind
    reads."""
    return json.loads(config.model_dump_json(exclude=set(NOT_FOR_KIND[config.kind])))
