"""Name -> builder registries for models, samplers and poolings.

A registry maps a config name to a builder. Registering a name twice is a programming error and
raises at import time; looking up an unknown name is a user error that lists the known names.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import ConfigDict, PydanticUserError, TypeAdapter, ValidationError

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
        adapters = _option_types(builder)
        for option, value in kwargs.items():
            if option in adapters:
                try:
                    kwargs[option] = adapters[option].validate_python(value)
                except ValidationError as error:
                    reason = error.errors()[0]["msg"]
                    raise ConfigError(
                        f"{self.kind} {name!r}: option {option!r}={value!r:.40}: {reason}"
                    ) from None
        return builder(**kwargs)

    def option_names(self, name: str) -> list[str]:
        """The options the builder registered under ``name`` takes, in its order.

        Raises:
            ConfigError: if no builder has that name.
        """
        return list(inspect.signature(self.get(name)).parameters)

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


_OPTIONS = ConfigDict(allow_inf_nan=False, arbitrary_types_allowed=True)
"""How a builder's options are checked: lax types (a YAML ``2`` is a float), finite numbers."""


@cache
def _option_types(builder: Callable[..., Any]) -> dict[str, TypeAdapter[Any]]:
    """A type checker for each option of ``builder`` whose annotation pydantic can check.

    Options typed by a class pydantic has no schema for (e.g. a module) are left to the builder.
    """
    adapters: dict[str, TypeAdapter[Any]] = {}
    for option, parameter in inspect.signature(builder).parameters.items():
        annotation = parameter.annotation
        if isinstance(annotation, str):  # postponed: resolve it where the builder was written
            try:
                annotation = eval(annotation, vars(sys.modules[builder.__module__]))
            except NameError:  # imported for type checking only: left to the builder
                continue
        if annotation is inspect.Parameter.empty:
            continue
        try:
            adapters[option] = TypeAdapter(annotation, config=_OPTIONS)
        except PydanticUserError:  # no schema, or a model with a config of its own
            continue
    return adapters


# The project's registries. Modules register their builders on import; ``vidfer.models`` and
# ``vidfer.data`` import every module that registers something.
MODELS: Registry[VideoModel] = Registry("model")
"""Clip model families by ``model.name`` (``resnet3d_18``, ``c3d``, ...; ``vidfer models``)."""
POOLINGS: Registry[TemporalPooling] = Registry("pooling")
"""Temporal poolings by ``pooling.name`` (``avg``, ``max``, ``softmax``, ``adaptive_softmax``)."""
SAMPLERS: Registry[ClipSampler] = Registry("sampler")
"""Clip samplers by ``sampler.name`` (``uniform``, ``stochastic_softmax``, ...)."""
ATTENTIONS: Registry[AttentionModule] = Registry("attention")
"""Attention modules by ``model.attention.name`` (``mask``, ``context_mask``, ``stn``, ...)."""
