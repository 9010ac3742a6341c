"""Manifests, dataset adapters, the prepared store, clip samplers, transforms and datasets.

Importing this package registers every clip sampler in :data:`vidfer.registry.SAMPLERS`.
"""

from vidfer.data import samplers, stochastic_softmax

__all__ = ["samplers", "stochastic_softmax"]
