"""Manifests, dataset adapters, the prepared store, clip samplers, transforms and datasets.

Importing this package imports nothing else, so that the decoding workers of ``vidfer prepare``
start without torch. :mod:`vidfer.data.sampler_zoo` builds any sampler by name (it registers
the learning samplers of :mod:`vidfer.data.stochastic_softmax` too).
"""
