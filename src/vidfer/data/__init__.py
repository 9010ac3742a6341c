"""Manifests, dataset adapters, the prepared store, clip samplers, transforms and datasets.

Importing this package imports nothing else, so that the decoding workers of ``vidfer prepare``
start without torch. :func:`vidfer.data.samplers.build_sampler` registers the learning samplers
(:mod:`vidfer.data.stochastic_softmax`) in :data:`vidfer.registry.SAMPLERS` on first use.
"""
