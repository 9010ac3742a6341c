"""The binding to Hugging Face ``transformers``' video encoders: its optional import, and each
family's config and base-model classes (:class:`Family`), for the models
(:mod:`vidfer.models.hf_video`) and their weights (:mod:`vidfer.models.hf_weights`).

``transformers`` is imported only when a family is built or its weights are read; its absence is
a one-line error naming the extra that installs it (:data:`EXTRA`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from vidfer.errors import ConfigError

EXTRA = "pip install 'vidfer[hf]'"
"""How to install the optional ``transformers`` dependency."""


def import_transformers(family: str) -> ModuleType:
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
def quiet(transformers: ModuleType) -> Iterator[None]:
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


def square_side(size: Any, where: str) -> int:
    """The side of a square ``image_size`` (an int, or a pair of equal ints) read from ``where``.

    Raises:
        ConfigError: if it is not square.
    """
    sides = {size} if isinstance(size, int) else set(size)
    if len(sides) != 1:
        raise ConfigError(f"{where}: image_size {size} is not square; vidfer takes square frames")
    return int(sides.pop())


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
        transformers = import_transformers(self.name)
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
        transformers = import_transformers(self.name)
        config_class, _ = self.classes()
        return set(config_class().to_dict()) - set(transformers.PretrainedConfig().to_dict())

    def architecture(self, config: Any) -> dict[str, Any]:
        """The architecture fields of a config, as plain values."""
        fields = self.fields()
        return {k: v for k, v in sorted(config.to_dict().items()) if k in fields}


VIDEOMAE = Family("videomae", "VideoMAEConfig", "VideoMAEModel")
TIMESFORMER = Family("timesformer", "TimesformerConfig", "TimesformerModel")
