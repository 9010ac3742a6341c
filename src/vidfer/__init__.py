"""vidfer: spatio-temporal video classification (facial expressions, pain, actions).

The public Python API: every ``vidfer`` command is a thin layer over one of these names, which
are stable (kept, or deprecated first, across releases); anything reached through a submodule
is internal. ::

    import vidfer

    if __name__ == "__main__":
        vidfer.make_actions("data/actions", videos_per_class=6)         # vidfer synth
        config = vidfer.load_config("configs/actions_resnet3d18.yaml")  # read and checked
        vidfer.load_dataset(config.data)                                # vidfer prepare
        vidfer.train(config, "runs/r3d")                                # vidfer train
        metrics = vidfer.evaluate_run("runs/r3d", "test")               # vidfer evaluate
        vidfer.predict_video("new.mp4", "pred/", "runs/r3d")            # vidfer predict
        vidfer.write_report("runs/r3d")                                 # vidfer report

By command:

- ``synth``: :func:`make_expressions`, :func:`make_actions`; ``manifest``: :func:`write_manifest`;
  ``prepare``: :func:`load_dataset` with a :class:`DataConfig` (``config.data``).
- ``train``: :func:`load_config`, :func:`train` (a :class:`RunConfig`); ``train-frames``:
  :func:`train_frames`, :class:`FrameTrainSettings`; ``video-attention``:
  :func:`train_video_attention`, :class:`VideoAttentionSettings`.
- ``experiment``: :func:`run_experiment`; ``evaluate``: :func:`evaluate_run`;
  ``attention-maps``: :func:`attention_maps_of_run`; ``fuse``: :func:`fuse_runs`,
  :class:`FusionSpec`.
- ``predict``: :func:`predict_video`, :func:`predict_many` (:class:`Prediction`); ``live``:
  :func:`run_live`; ``export``: :func:`export_model`, :func:`load_exported`; ``report``:
  :func:`write_report`.
- ``assets``: :func:`fetch_assets`, :func:`list_assets`, :func:`asset_path`; ``configs``:
  :func:`shipped_configs`, :func:`shipped_config`; ``demo``: :func:`run_demo`.
- The registries of names a config can use (``MODELS``, ``POOLINGS``, ``SAMPLERS``,
  ``ATTENTIONS``) and of the kinds of run (``PIPELINES``); :class:`VidferError`, the base of every
  error vidfer raises on bad input (its message is one line naming the file or option at fault).

The names are imported on first use, so that ``import vidfer`` is cheap and ``import
vidfer.data`` (e.g. in a decoding worker) does not import torch.

Worker processes and the ``__main__`` guard: videos are decoded in sandboxed worker processes
started with ``spawn`` (:mod:`vidfer.io.sandbox`). They do not import your script again, so a
script that calls :func:`train` or :func:`load_dataset` at its top level works on Linux without an
``if __name__ == "__main__":`` guard. Keep the guard all the same where torch's data-loader
workers are spawned too (macOS and Windows, with ``data.workers`` above 0): there, an unguarded
script is started again in every loader worker.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# oneDNN (PyTorch's CPU convolutions) keeps one primitive per layer and input shape, up to 1024,
# each with its own buffers; shapes that vary (MTCNN's candidate counts, videos of different
# lengths) made a preparation worker grow by about 0.5 GiB over a 10-minute video. 64 still
# holds a training step's primitives. It is read at the first convolution; set it to override.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

if TYPE_CHECKING:
    from vidfer.assets import asset_path, fetch_assets, list_assets
    from vidfer.config import DataConfig, FrameTrainSettings, RunConfig, VideoAttentionSettings
    from vidfer.config.shipped import shipped_config, shipped_configs
    from vidfer.data.adapters import write_manifest
    from vidfer.data.prepared import load_dataset
    from vidfer.data.synth import make_actions, make_expressions
    from vidfer.demo import run_demo
    from vidfer.errors import VidferError
    from vidfer.evaluation.attention_maps import attention_maps_of_run
    from vidfer.experiment import run_experiment
    from vidfer.export import export_model, load_exported
    from vidfer.fusion.fuse import FusionSpec, fuse_runs
    from vidfer.pipelines import PIPELINES, evaluate_run, load_config, train
    from vidfer.pipelines.video_attention import train_video_attention
    from vidfer.predict import Prediction, predict_many, predict_video
    from vidfer.predict.live import LiveOptions, run_live
    from vidfer.registry import ATTENTIONS, MODELS, POOLINGS, SAMPLERS
    from vidfer.training.frames import train_frames
    from vidfer.viz.report import write_report

_HOMES = {
    "VidferError": "vidfer.errors",
    "RunConfig": "vidfer.config",
    "DataConfig": "vidfer.config",
    "FrameTrainSettings": "vidfer.config",
    "VideoAttentionSettings": "vidfer.config",
    "shipped_configs": "vidfer.config.shipped",
    "shipped_config": "vidfer.config.shipped",
    "make_expressions": "vidfer.data.synth",
    "make_actions": "vidfer.data.synth",
    "write_manifest": "vidfer.data.adapters",
    "load_dataset": "vidfer.data.prepared",
    "load_config": "vidfer.pipelines",  # read and resolved: a bad input fails here
    "train": "vidfer.pipelines",
    "evaluate_run": "vidfer.pipelines",
    "PIPELINES": "vidfer.pipelines",
    "train_frames": "vidfer.training.frames",
    "train_video_attention": "vidfer.pipelines.video_attention",
    "attention_maps_of_run": "vidfer.evaluation.attention_maps",
    "run_experiment": "vidfer.experiment",
    "fuse_runs": "vidfer.fusion.fuse",
    "FusionSpec": "vidfer.fusion.fuse",
    "predict_video": "vidfer.predict",
    "Prediction": "vidfer.predict",
    "predict_many": "vidfer.predict",
    "run_live": "vidfer.predict.live",
    "LiveOptions": "vidfer.predict.live",
    "export_model": "vidfer.export",
    "load_exported": "vidfer.export",
    "write_report": "vidfer.viz.report",
    "fetch_assets": "vidfer.assets",
    "list_assets": "vidfer.assets",
    "asset_path": "vidfer.assets",
    "run_demo": "vidfer.demo",
}
_REGISTRIES = ("MODELS", "POOLINGS", "SAMPLERS", "ATTENTIONS")

__all__ = [
    "ATTENTIONS",
    "MODELS",
    "PIPELINES",
    "POOLINGS",
    "SAMPLERS",
    "DataConfig",
    "FrameTrainSettings",
    "FusionSpec",
    "LiveOptions",
    "Prediction",
    "RunConfig",
    "VideoAttentionSettings",
    "VidferError",
    "asset_path",
    "attention_maps_of_run",
    "evaluate_run",
    "export_model",
    "fetch_assets",
    "fuse_runs",
    "list_assets",
    "load_config",
    "load_dataset",
    "load_exported",
    "make_actions",
    "make_expressions",
    "predict_many",
    "predict_video",
    "run_demo",
    "run_experiment",
    "run_live",
    "shipped_config",
    "shipped_configs",
    "train",
    "train_frames",
    "train_video_attention",
    "write_manifest",
    "write_report",
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


def __dir__() -> list[str]:
    """The public names with the module's own (for completion in a shell)."""
    return sorted([*globals(), *__all__])
