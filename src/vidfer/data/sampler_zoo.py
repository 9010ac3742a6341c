"""A run config's clip sampler built by name: the plain samplers and the learning ones.

Importing this module registers every sampler (:mod:`vidfer.data.samplers`,
:mod:`vidfer.data.stochastic_softmax`) in :data:`vidfer.registry.SAMPLERS`.
"""

from __future__ import annotations

from typing import Any

from vidfer.config import SamplerConfig
from vidfer.data import stochastic_softmax  # noqa: F401 -- registers the learning samplers
from vidfer.data.samplers import ClipSampler
from vidfer.registry import SAMPLERS


def build_sampler(name: str, **params: Any) -> ClipSampler:
    """Build a registered sampler (this module's and the learning ones)."""
    return SAMPLERS.build(name, **params)


def sampler_from_config(section: SamplerConfig) -> ClipSampler:
    """Build the sampler of a run config's ``sampler`` section.

    Raises:
        ConfigError: on an unknown sampler or an invalid option.
    """
    return build_sampler(
        section.name,
        clip_len=section.clip_len,
        stride=section.stride,
        num_clips=section.num_clips,
        **section.params,
    )
