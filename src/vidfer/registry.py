"""Name -> builder registries for models, samplers and poolings.

A registry maps a config name to a builder. Registering a name twice is a programming error and
raises at import time; looking up an unknown name is a user error that lists the known names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from vidfer.errors import ConfigError

if TYPE_CHECKING:
    from vidfer.data.samplers import ClipSampler
    from vidfer.models.attention import AttentionModule
    from vidfer.models.base import VideoModel
    from vidfer.models.pooling import TemporalPooling

T = TypeVar("T")
B = TypeVar("B", bound=Callable[..., Any])


class Registry(Generic[T]):
    """A named collection of builders.

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"model"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[B], B]:
        """Decorator that registers ``builder`` under ``name``.

        Raises:
            ValueError: if ``name`` is already registered.
        """

        def decorate(builder: B) -> B:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            return builder

        return decorate

    def get(self, name: str) -> Callable[..., T]:
        """Return the builder registered under ``name``.

        Raises:
            ConfigError: if no builder has that name; the message lists the known names.
        """
        try:
            return self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def build(self, name: str, **kwargs: object) -> T:
        """Build the object registered under ``name`` with keyword arguments.

        Raises:
            ConfigError: if the name is unknown or an option does not fit the builder (the
                message names the option and lists the accepted ones).
        """
        builder = self.get(name)
        signature = inspect.signature(builder)
        try:
            signature.bind(**kwargs)
        except TypeError as error:
            accepted = ", ".join(signature.parameters) or "none"
            raise ConfigError(
                f"{self.kind} {name!r}: {error}; its options are: {accepted}"
            ) from None
        return builder(**kwargs)

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# The project's registries. Modules register their builders on import; ``vidfer.models`` and
# ``vidfer.data`` import every module that registers something.
MODELS: Registry[VideoModel] = Registry("model")
POOLINGS: Registry[TemporalPooling] = Registry("pooling")
SAMPLERS: Registry[ClipSampler] = Registry("sampler")
ATTENTIONS: Registry[AttentionModule] = Registry("attention")
