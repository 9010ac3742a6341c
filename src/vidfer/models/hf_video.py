"""Hugging Face ``transformers``' VideoMAE and TimeSformer encoders as vidfer models of fixed clips.

The optional extra ``pip install vidfer[hf]`` installs ``transformers``; it is imported only
when one of these families is built or its weights are read, and its absence is a one-line
error naming the extra.

The wrappers adopt the encoder's modules: ``embeddings``, each transformer layer as a stage of
its own (``layer0``, ``layer1``, ...: the ``encoder.layer.<i>`` of ``transformers``, so that
``optim.freeze`` and ``optim.layer_decay`` act layer by layer) and the final ``layernorm`` where
the model has one. The source's classifier (``classifier.*``, VideoMAE's ``fc_norm.*``, the
pre-training decoder) is never loaded: vidfer's head (a 1x1x1 convolution) classifies the run's
classes and its temporal pooling pools the clips' scores. A clip's features are

- VideoMAE: the encoder's last tokens, averaged over the clip's time (tubelets) and kept on their
  ``image_size / patch_size`` grid: averaged over space by the head they are the mean of every
  token, VideoMAE's own ``use_mean_pooling`` input to its classifier (before its ``fc_norm``);
- TimeSformer: the class token after the final ``layernorm`` (one position), as its classifier
  reads it.

The architecture is a ``transformers`` config: ``model.params.architecture`` holds its fields
(left out: the published base model's, e.g. VideoMAE-B of 16 frames of 224 x 224 pixels).
``model.weights`` names a hub id (read with ``from_pretrained``: downloaded into the Hugging
Face cache when online, read from that cache with ``VIDFER_OFFLINE`` or ``HF_HUB_OFFLINE`` set)
or a local ``save_pretrained`` folder. Resolving a run's config (:mod:`vidfer.pipelines.clip`)
writes the weights' architecture into ``model.params.architecture``, their clip length
(``num_frames``) and frame size (``image_size``) into ``sampler.clip_len``, ``eval.clip_len``
and ``transforms.size`` and their processor's ``image_mean`` and ``image_std``
(``preprocessor_config.json``, else ``video_preprocessor_config.json``) into
``transforms.mean`` and ``transforms.std``, unless the config writes them; a written value that
differs is an error naming the option.
"""

from __future__ import annotations

import abc
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import nn

from vidfer.config import ModelConfig
from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.run_folder import RunDir
from vidfer.models.fixed_clips import FixedClipVideo, fixed_clip_geometry
from vidfer.models.heads import ConvHead
from vidfer.models.options import check_model_options
from vidfer.models.weights import (
    DESCRIBING,
    KEYS_SHOWN,
    Carried,
    DescribingFamily,
    InitialState,
    Normalisation,
)
from vidfer.registry import MODELS

EXTRA = "pip install 'vidfer[hf]'"
"""How to install the optional ``transformers`` dependency."""

PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
"""The processor's settings in a ``save_pretrained`` folder or hub repository: the image
processor's (what the published repositories hold), else the video processor's (what
``transformers`` 5 writes); the first found is read."""

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
"""A Hugging Face hub model id (``name`` or ``owner/name``)."""


def _transformers(family: str) -> ModuleType:
    """The ``transformers`` package.

    Raises:
        ConfigError: if it is not installed (naming the extra that installs it).
    """
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            f"model {family!r} needs Hugging Face transformers, which is not installed: {EXTRA}"
        ) from None
    return transformers


@contextmanager
def _quiet(transformers: ModuleType) -> Iterator[None]:
    """``transformers``' loading report and progress bars off (the decoder and classifier
    weights it skips are left out on purpose), restored afterwards."""
    logging = transformers.utils.logging
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _offline() -> bool:
    """True when nothing may be downloaded (vidfer's or Hugging Face's switch)."""
    return any(os.environ.get(name) for name in ("VIDFER_OFFLINE", "HF_HUB_OFFLINE"))


def _square(size: Any, where: str) -> int:
    """The side of a square ``image_size`` (an int, or a pair of equal ints) read from ``where``.

    Raises:
        ConfigError: if it is not square.
    """
    sides = {size} if isinstance(size, int) else set(size)
    if len(sides) != 1:
        raise ConfigError(f"{where}: image_size {size} is not square; vidfer takes square frames")
    return int(sides.pop())


def _listed(keys: list[str]) -> str:
    """The first few keys, and how many more."""
    more = f" and {len(keys) - KEYS_SHOWN} more" if len(keys) > KEYS_SHOWN else ""
    return ", ".join(keys[:KEYS_SHOWN]) + more


def _layer_index(key: str) -> str:
    """``transformers``' name of a vidfer key (``layer3.x`` is ``encoder.layer.3.x``)."""
    return re.sub(r"^layer(\d+)\.", r"encoder.layer.\1.", key)


def _vidfer_key(key: str) -> str:
    """vidfer's name of a ``transformers`` base-model key (the inverse of :func:`_layer_index`)."""
    return re.sub(r"^encoder\.layer\.(\d+)\.", r"layer\1.", key)


@dataclass(frozen=True)
class Family:
    """One ``transformers`` video encoder.

    Attributes:
        name: The vidfer family name (``model.name``).
        config_class: The name of its config class in ``transformers``.
        model_class: The name of its base model (encoder) class.
    """

    name: str
    config_class: str
    model_class: str

    def classes(self) -> tuple[Any, Any]:
        """The config class and base model class."""
        transformers = _transformers(self.name)
        return getattr(transformers, self.config_class), getattr(transformers, self.model_class)

    def config(self, architecture: Mapping[str, Any] | None) -> Any:
        """A ``transformers`` config of the architecture's fields (None: the defaults).

        Raises:
            ConfigError: on a field the config does not have.
        """
        config_class, _ = self.classes()
        fields = self.fields()
        unknown = sorted(set(architecture or {}) - fields)
        if unknown:
            raise ConfigError(
                f"model.params.architecture: {', '.join(unknown)} not a field of "
                f"{self.config_class}; its fields are {', '.join(sorted(fields))}"
            )
        return config_class(**dict(architecture or {}))

    def fields(self) -> set[str]:
        """The architecture's fields: the config class's own, not every model's."""
        transformers = _transformers(self.name)
        config_class, _ = self.classes()
        return set(config_class().to_dict()) - set(transformers.PretrainedConfig().to_dict())

    def architecture(self, config: Any) -> dict[str, Any]:
        """The architecture fields of a config, as plain values."""
        fields = self.fields()
        return {k: v for k, v in sorted(config.to_dict().items()) if k in fields}


VIDEOMAE = Family("videomae", "VideoMAEConfig", "VideoMAEModel")
TIMESFORMER = Family("timesformer", "TimesformerConfig", "TimesformerModel")


class HFVideo(FixedClipVideo, abc.ABC):
    """A ``transformers`` video encoder, its clips scored one by one through a 1x1x1 conv.

    Args:
        num_classes: Classes ``K`` of the score map.
        architecture: Fields of the family's ``transformers`` config (None: its defaults).
        dropout_features: Dropout probability on a clip's features in training.

    Raises:
        ConfigError: on an invalid option, a field the config does not have, or ``transformers``
            missing.
    """

    family: ClassVar[Family]
    embeddings: nn.Module
    layernorm: nn.Module | None

    def __init__(
        self,
        num_classes: int,
        *,
        architecture: Mapping[str, Any] | None,
        dropout_features: float,
    ) -> None:
        super().__init__()
        check_model_options(num_classes=num_classes, width=1.0, dropout_features=dropout_features)
        config = self.family.config(architecture)
        _, model_class = self.family.classes()
        net = model_class(config)
        self.config = config
        self.num_classes = num_classes
        self.clip_len = int(config.num_frames)
        self.in_size = _square(config.image_size, "model.params.architecture")
        self.patch_size = int(config.patch_size)
        self.embeddings = net.embeddings
        self.layers: list[nn.Module] = list(net.encoder.layer)
        for index, layer in enumerate(self.layers):
            self.add_module(f"layer{index}", layer)
        self.layernorm = net.layernorm
        self.feature_channels = int(config.hidden_size)
        self.head = ConvHead(self.feature_channels, num_classes, dropout=dropout_features)
        self.geometry = fixed_clip_geometry(self.clip_len)

    @abc.abstractmethod
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Input tokens ``(N, L, D)`` of ``transformers``' ``pixel_values`` ``(N, T, C, H, W)``."""

    @abc.abstractmethod
    def token_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(N, D, H', W')`` of the last tokens ``(N, L, D)``."""

    def tokens(self, clips: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden state ``(N, L, D)`` of clips ``(N, C, T, H, W)``: that of
        ``transformers``' base model on the same clips.

        Raises:
            ConfigError: if the clips have another channel count than the model takes.
        """
        if clips.shape[1] != self.config.num_channels:
            raise ConfigError(
                f"{self.original} takes {self.config.num_channels} channels, got "
                f"{clips.shape[1]}; prepare the videos in colour (or set num_channels in "
                "model.params.architecture)"
            )
        x = self.embed(clips.transpose(1, 2))  # (N, C, T, H, W) -> (N, T, C, H, W) -> (N, L, D)
        for layer in self.layers:
            out = layer(x)  # a tuple in some transformers versions
            x = out[0] if isinstance(out, tuple) else out
        return x if self.layernorm is None else self.layernorm(x)

    def clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """The features of the encoder's last tokens (:meth:`token_features`)."""
        return self.token_features(self.tokens(clips))


class VideoMAE(HFVideo):
    """VideoMAE (Tong et al., 2022): a ViT over space-time tubelets, MAE-pretrained."""

    original = "Hugging Face VideoMAE"
    family = VIDEOMAE

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Tubelet embeddings plus the fixed sine-cosine positions, no token masked."""
        return self.embeddings(pixel_values, None)  # (N, T/t * H/p * W/p, D)

    def token_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The tokens on their grid, averaged over the clip's tubelets."""
        grid = self.in_size // self.patch_size
        steps = self.clip_len // int(self.config.tubelet_size)
        # Tokens are in the order of the tubelet convolution's output: time, rows, columns.
        x = tokens.reshape(tokens.shape[0], steps, grid, grid, -1)  # (N, T/t, H/p, W/p, D)
        return x.mean(dim=1).permute(0, 3, 1, 2)  # (N, H/p, W/p, D) -> (N, D, H/p, W/p)


class TimeSformer(HFVideo):
    """TimeSformer (Bertasius et al., 2021): a ViT with divided space-time attention."""

    original = "Hugging Face TimeSformer"
    family = TIMESFORMER

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class token, patch embeddings, space and time positions."""
        return self.embeddings(pixel_values)  # (N, 1 + H/p * W/p * T, D)

    def token_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The class token, at one position."""
        return tokens[:, 0, :, None, None]  # (N, 1 + L, D) -> (N, D, 1, 1)


class HubWeights(DescribingFamily):
    """The weights of a ``transformers`` family: a hub id or a ``save_pretrained`` folder.

    Args:
        family: The family.
    """

    def __init__(self, family: Family) -> None:
        self.family = family

    def _local(self, spec: str) -> bool:
        """True for a folder; a hub id is not one, any other missing path an error.

        Raises:
            CheckpointError: for a path that is neither a folder nor a hub id.
        """
        path = Path(spec)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise CheckpointError(
                    f"model.weights {spec}: not a Hugging Face save_pretrained folder (no "
                    "config.json) nor a vidfer run folder (no config.yaml)"
                )
            return True
        if path.is_absolute() or spec.startswith(".") or not HUB_ID.fullmatch(spec):
            raise CheckpointError(
                f"model.weights {spec}: no such folder (give a save_pretrained folder, a vidfer "
                "run folder or a Hugging Face hub id such as MCG-NJU/videomae-base)"
            )
        return False

    def _unavailable(self, spec: str, exc: Exception) -> CheckpointError:
        """The one-line error of a hub id that cannot be had."""
        if _offline():
            from huggingface_hub import constants

            why = (
                f"not in the Hugging Face cache {constants.HF_HUB_CACHE} and downloads are off "
                "(VIDFER_OFFLINE or HF_HUB_OFFLINE)"
            )
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            why = f"could not be downloaded ({first})"
        return CheckpointError(
            f"model.weights {spec!r}: {why}; pass a local folder written by save_pretrained "
            "(config.json, model.safetensors, preprocessor_config.json) instead"
        )

    def _raw_config(self, spec: str) -> dict[str, Any]:
        """The ``config.json`` of a folder or hub id, as a dict."""
        transformers = _transformers(self.family.name)
        local = self._local(spec)
        try:
            raw, _ = transformers.PretrainedConfig.get_config_dict(
                spec, local_files_only=local or _offline()
            )
        except (OSError, ValueError) as exc:
            if local:
                raise CheckpointError(
                    f"model.weights {spec}: config.json unreadable ({exc})"
                ) from None
            raise self._unavailable(spec, exc) from None
        found, wanted = raw.get("model_type"), self.family.classes()[0].model_type
        if found != wanted:
            raise ConfigError(
                f"model.weights {spec}: a {found!r} model, not {wanted!r}; "
                f"set model.name to the family of these weights"
            )
        return dict(raw)

    def _file(self, spec: str, name: str) -> str | None:
        """The path of a file of a folder or hub repository (None: it has none)."""
        transformers = _transformers(self.family.name)
        try:
            found: str | None = transformers.utils.cached_file(
                spec,
                name,
                local_files_only=Path(spec).is_dir() or _offline(),
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
        except OSError as exc:
            raise self._unavailable(spec, exc) from None
        return found

    def _normalisation(self, spec: str) -> Normalisation | None:
        """``(mean, std)`` on ``[0, 1]`` values from the image processor's settings, if any.

        The processor rescales the 0-255 pixels by ``rescale_factor`` (1/255 when left out)
        before normalising, so its mean and std are divided by ``255 * rescale_factor``.
        """
        file = next(filter(None, (self._file(spec, name) for name in PROCESSOR_FILES)), None)
        if file is None:
            return None
        settings = json.loads(Path(file).read_text())
        if not settings.get("do_normalize", True):
            return None
        scale = 255 * (
            settings.get("rescale_factor", 1 / 255) if settings.get("do_rescale", True) else 1
        )
        mean, std = settings.get("image_mean"), settings.get("image_std")
        if mean is None or std is None:
            return None
        return tuple(m / scale for m in mean), tuple(s / scale for s in std)

    def carried(self, section: ModelConfig) -> Carried:
        """The architecture, clip and normalisation of the weights (or of ``params`` alone).

        Raises:
            ConfigError: if ``model.params.architecture`` is written and differs from the
                weights' (naming the fields), or the weights are another family's.
            CheckpointError: if the weights cannot be had.
        """
        written = section.params.get("architecture")
        spec = section.weights
        normalisation: Normalisation | None = None
        if spec is None or Path(spec).is_file():
            config = self.family.config(written)
        elif RunDir(spec).config_path.exists():  # a vidfer run: its architecture and input
            earlier = RunDir(spec).config()
            config = self.family.config(earlier.model.params.get("architecture"))
            normalisation = earlier.transforms.mean, earlier.transforms.std
        else:
            config = self.family.config(
                {k: v for k, v in self._raw_config(spec).items() if k in self.family.fields()}
            )
            normalisation = self._normalisation(spec)
        architecture = self.family.architecture(config)
        if written is not None and spec is not None:
            differ = sorted(k for k in written if written[k] != architecture.get(k))
            if differ:
                raise ConfigError(
                    f"model.params.architecture: {', '.join(differ[:KEYS_SHOWN])} differ from "
                    f"the weights {spec}; leave model.params.architecture out (it is read from "
                    "the weights)"
                )
        return Carried(
            params={"architecture": architecture},
            normalisation=normalisation,
            frames=int(config.num_frames),
            size=_square(
                config.image_size,
                "model.params.architecture" if spec is None else f"model.weights {spec}",
            ),
        )

    def initial_state(self, spec: str) -> InitialState:
        """The base model's weights from ``from_pretrained``, in vidfer's names.

        Raises:
            CheckpointError: if they cannot be read, or miss some of the encoder's weights.
        """
        self._raw_config(spec)  # the folder or hub id and its family, checked
        _, model_class = self.family.classes()
        try:
            with _quiet(_transformers(self.family.name)):
                net, info = model_class.from_pretrained(
                    spec,
                    local_files_only=Path(spec).is_dir() or _offline(),
                    output_loading_info=True,
                    ignore_mismatched_sizes=True,  # reported below, with the shapes
                )
        except (OSError, ValueError) as exc:
            if Path(spec).is_dir():
                first = str(exc).strip().splitlines()[0]
                raise CheckpointError(f"model.weights {spec}: unreadable ({first})") from None
            raise self._unavailable(spec, exc) from None
        missing = sorted(info.get("missing_keys", ()))
        shapes = sorted(
            f"{key} {tuple(file)} (file) vs {tuple(model)}"
            for key, file, model in info.get("mismatched_keys", ())
        )
        problems = [
            f"{kind}: {_listed(keys)}"
            for kind, keys in (("missing", missing), ("shape", shapes))
            if keys
        ]
        if problems:
            raise CheckpointError(
                f"weights {spec} do not fit the {self.family.model_class} of their config.json: "
                + "; ".join(problems)
            )
        state = {_vidfer_key(k): v for k, v in net.state_dict().items()}
        return InitialState(state, f"{spec} ({self.family.model_class})", _layer_index)


for _family in (VIDEOMAE, TIMESFORMER):
    DESCRIBING[_family.name] = HubWeights(_family)


@MODELS.register("videomae")
def videomae(
    num_classes: int,
    *,
    architecture: dict[str, Any] | None = None,
    dropout_features: float = 0.0,
) -> VideoMAE:
    """VideoMAE (``transformers``' ``VideoMAEModel``) scoring clips of ``num_frames`` frames.

    Args:
        num_classes: Classes ``K`` of the score map.
        architecture: ``VideoMAEConfig`` fields (None: VideoMAE-B, 16 frames of 224 pixels);
            read from ``model.weights`` when a run's config is resolved.
        dropout_features: Dropout on the features in training.

    Raises:
        ConfigError: on an invalid option, or ``transformers`` missing.
    """
    return VideoMAE(num_classes, architecture=architecture, dropout_features=dropout_features)


@MODELS.register("timesformer")
def timesformer(
    num_classes: int,
    *,
    architecture: dict[str, Any] | None = None,
    dropout_features: float = 0.0,
) -> TimeSformer:
    """TimeSformer (``transformers``' ``TimesformerModel``) scoring clips of ``num_frames``.

    Args:
        num_classes: Classes ``K`` of the score map.
        architecture: ``TimesformerConfig`` fields (None: TimeSformer-B, 8 frames of 224
            pixels); read from ``model.weights`` when a run's config is resolved.
        dropout_features: Dropout on the features in training.

    Raises:
        ConfigError: on an invalid option, or ``transformers`` missing.
    """
    return TimeSformer(num_classes, architecture=architecture, dropout_features=dropout_features)
