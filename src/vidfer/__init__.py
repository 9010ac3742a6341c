"""vidfer: spatio-temporal video classification (facial expressions, pain, actions).

The public Python API, each a thin layer under a ``vidfer`` command::

    import vidfer

    config = vidfer.load_config("configs/actions_resnet3d18.yaml")
    result = vidfer.train(config, "runs/r3d")             # vidfer train
    metrics = vidfer.evaluate_run("runs/r3d", "test")     # vidfer evaluate
    vidfer.predict_video("new.mp4", "pred/", "runs/r3d")  # vidfer predict
    vidfer.predict_many(["videos/"], "preds/", "runs/r3d")  # vidfer predict videos/ ...

and the registries of names a config can use (``MODELS``, ``POOLINGS``, ``SAMPLERS``,
``ATTENTIONS``) and of the kinds of run (``PIPELINES``).

The names are imported on first use, so that ``import vidfer.data`` (e.g. in a decoding worker)
does not import torch. Scripts that prepare or train must guard their entry point with
``if __name__ == "__main__":``: decoding runs in ``spawn`` worker processes, which import the
script again.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidfer.config import RunConfig
    from vidfer.experiment import run_experiment
    from vidfer.fusion.fuse import FusionSpec, fuse_runs
    from vidfer.pipelines import PIPELINES, evaluate_run, load_config, train
    from vidfer.predict import Prediction, predict_many, predict_video
    from vidfer.registry import ATTENTIONS, MODELS, POOLINGS, SAMPLERS

_HOMES = {
    "RunConfig": "vidfer.config",
    "load_config": "vidfer.pipelines",  # read and resolved: a bad input fails here
    "train": "vidfer.pipelines",
    "evaluate_run": "vidfer.pipelines",
    "PIPELINES": "vidfer.pipelines",
    "predict_video": "vidfer.predict",
    "Prediction": "vidfer.predict",
    "predict_many": "vidfer.predict",
    "run_experiment": "vidfer.experiment",
    "fuse_runs": "vidfer.fusion.fuse",
    "FusionSpec": "vidfer.fusion.fuse",
}
_REGISTRIES = ("MODELS", "POOLINGS", "SAMPLERS", "ATTENTIONS")

__all__ = [
    "ATTENTIONS",
    "MODELS",
    "PIPELINES",
    "POOLINGS",
    "SAMPLERS",
    "FusionSpec",
    "Prediction",
    "RunConfig",
    "evaluate_run",
    "fuse_runs",
    "load_config",
    "predict_many",
    "predict_video",
    "run_experiment",
    "train",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name in _REGISTRIES:
        importlib.import_module("vidfer.models")  # registers the models, poolings, attentions
        importlib.import_module("vidfer.data.sampler_zoo")  # registers every sampler
        return getattr(importlib.import_module("vidfer.registry"), name)
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'vidfer' has no attribute {name!r}")
