"""The initial weights of the ``transformers`` video families (``model.weights``).

A Hugging Face hub id (read with ``from_pretrained``: downloaded into the Hugging Face cache when
online, read from that cache with ``VIDFER_OFFLINE`` or ``HF_HUB_OFFLINE`` set) or a local
``save_pretrained`` folder. :class:`HubWeights` is each family's entry of
:data:`vidfer.models.weights.DESCRIBING` (registered by :mod:`vidfer.models.hf_video`): the
weights carry their architecture, clip length, frame size and normalisation (the processor's
``image_mean`` and ``image_std``), which resolving a run's config writes into it; the encoder's
weights are loaded in vidfer's names (``layer<i>`` for ``encoder.layer.<i>``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from vidfer.config import ModelConfig
from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.run_folder import RunDir
from vidfer.models.hf_families import (
    Family,
    import_transformers,
    quiet,
    square_side,
)
from vidfer.models.weights import (
    KEYS_SHOWN,
    Carried,
    DescribingFamily,
    InitialState,
    Normalisation,
)

PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
"""The processor's settings in a ``save_pretrained`` folder or hub repository: the image
processor's (what the published repositories hold), else the video processor's (what
``transformers`` 5 writes); the first found is read."""

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
"""A Hugging Face hub model id (``name`` or ``owner/name``)."""


def _offline() -> bool:
    """True when nothing may be downloaded (vidfer's or Hugging Face's switch)."""
    return any(os.environ.get(name) for name in ("VIDFER_OFFLINE", "HF_HUB_OFFLINE"))


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
        transformers = import_transformers(self.family.name)
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
        transformers = import_transformers(self.family.name)
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
            size=square_side(
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
            with quiet(import_transformers(self.family.name)):
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
