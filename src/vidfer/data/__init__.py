"""Manifests, dataset adapters, the prepared store, clip samplers, transforms and datasets."""
