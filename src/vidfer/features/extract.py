"""Per-frame features of a frame CNN, and per-step features of a trained 3D model, cached.

A frame extractor runs a 2D CNN (by name, e.g. the FER2013 mini-Xception, or the model of a
``vidfer train-frames`` run) over every stored frame of every prepared video, batched, and keeps
the output of one layer, taken with a forward hook: convolutional maps are averaged over space
or flattened. Results go to a :class:`~vidfer.features.store.FeatureStore` inside the prepared
store (``<store>/features/``), keyed by the extractor's identity (model, checkpoint size and
mtime, layer): a second pipeline on the same frames re-extracts nothing, and an interrupted
extraction resumes at the first missing video. A video-run extractor reuses the run's own cache
(:func:`vidfer.pipelines.video_attention.extract_run_features`). The audio extractor caches each
video's IS10 vector (one step) the same way, or an empty array with the reason it has none; it
decodes the sound in sandboxed worker processes, so that one bad soundtrack does not stop a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vidfer.config import ExtractorConfig, LimitsConfig
from vidfer.data.prepared import PreparedDataset
from vidfer.errors import ConfigError
from vidfer.features.audio import IS10_SIZE, map_sandboxed_audio_features
from vidfer.features.store import FeatureStore, file_identity
from vidfer.models.frame_cnns import FrameCNN, MiniXceptionCNN, build_frame_cnn
from vidfer.models.frame_runs import frame_run_checkpoint, load_frame_run
from vidfer.models.mini_xception import FER2013_CLASSES
from vidfer.progress import track

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameSource:
    """A loaded frame CNN, the layer to read and what identifies the pair.

    Attributes:
        model: The CNN in eval mode.
        classes: Its class names (None when unknown).
        module: The ``named_modules`` name of the layer ("" is the whole model: the logits).
        identity: JSON-able description naming the cache folder.
    """

    model: FrameCNN
    classes: list[str] | None
    module: str
    identity: dict[str, Any]


def load_frame_source(extractor: ExtractorConfig, device: torch.device) -> FrameSource:
    """The CNN of a ``cnn`` or ``frame_run`` extractor and its layer.

    Raises:
        ConfigError: on an unknown layer (the message lists the model's layers).
    """
    classes: list[str] | None
    if extractor.frame_run is not None:
        model, classes = load_frame_run(extractor.frame_run, str(device))
        checkpoint = frame_run_checkpoint(extractor.frame_run)
        origin: dict[str, Any] = {"frame_run": file_identity(checkpoint)}
    else:
        assert extractor.cnn is not None  # one source is set (config validation)
        params = dict(extractor.params)
        num_classes = int(params.pop("num_classes", 7))
        model = build_frame_cnn(extractor.cnn, num_classes, **params).to(device).eval()
        # Only the FER2013 mini-Xception comes with named classes.
        fer = isinstance(model, MiniXceptionCNN) and num_classes == len(FER2013_CLASSES)
        classes = list(FER2013_CLASSES) if fer else None
        origin = {"cnn": extractor.cnn, "params": extractor.params}
    layers = model.feature_layers
    if extractor.layer not in layers:
        raise ConfigError(
            f"frames.extractors: layer {extractor.layer!r} is not one of this CNN's layers: "
            f"{', '.join(layers)}"
        )
    identity = {**origin, "layer": extractor.layer, "spatial": extractor.spatial}
    return FrameSource(model, classes, layers[extractor.layer], identity)


@torch.no_grad()
def frame_features(source: FrameSource, frames: np.ndarray, spatial: str, batch: int) -> np.ndarray:
    """Features ``(T, C)`` of frames ``(T, H, W, 3)`` uint8, ``batch`` frames per pass."""
    model = source.model
    captured: list[torch.Tensor] = []
    target: nn.Module = model if not source.module else model.get_submodule(source.module)
    handle = target.register_forward_hook(lambda _m, _i, out: captured.append(out))
    device = next(model.parameters()).device
    rows = []
    try:
        for first in range(0, len(frames), batch):
            captured.clear()
            model(model.prepare(frames[first : first + batch]).to(device))  # (b, C, S, S)
            out = captured[-1].float()
            if out.dim() == 4:  # a convolutional map (b, C, h, w)
                out = out.mean(dim=(2, 3)) if spatial == "avg" else out.flatten(1)
            rows.append(out.flatten(1).cpu().numpy())  # (b, C)
    finally:
        handle.remove()
    return np.concatenate(rows)


def extract_frame_features(
    extractor: ExtractorConfig, data: PreparedDataset, device: torch.device
) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Every usable video's per-frame features, cached in the prepared store.

    Returns:
        Memory-mapped features ``(T, C)`` by video id (one row per stored frame), and the
        CNN's class names (for the ``average`` classifier).
    """
    source = load_frame_source(extractor, device)
    store = FeatureStore(data.store.folder / "features", source.identity)
    missing = [item for item in data.items if not store.has(item.key)]
    for item in track(missing, total=len(missing), description="extracting frame features"):
        features = frame_features(
            source, data.store.frames(item.key), extractor.spatial, extractor.batch_size
        )
        store.save(item.key, features, {"video_id": item.row.video_id})
    return {item.row.video_id: store.load(item.key)[0] for item in data.items}, source.classes


def extract_audio_features(
    data: PreparedDataset, limits: LimitsConfig | None = None, workers: int = 1
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every usable video's IS10 audio features ``(1, 1582)``, cached in the prepared store.

    The sound is decoded in sandboxed workers (:func:`map_sandboxed_audio_features`): a video
    whose sound cannot be decoded, or whose worker crashed or overran its time or memory, is
    stored with that status (``corrupt_audio``, ``crashed``, ``timeout``, ``out_of_memory``),
    named in one warning with the fix, and has no features, as a video without sound; the others
    go on. Entries without features remember ``limits``, so that they are decided again under
    other limits.

    Args:
        data: The prepared dataset.
        limits: The decoding limits (``data.limits``); None: the defaults.
        workers: Decoding worker processes (``data.workers``).

    Returns:
        The features by video id (``(0, 1582)`` for a video without usable sound), and the
        reason (``no_audio``, ``too_short``, ``corrupt_audio``, ...) of each video that has none.
    """
    limits = limits or LimitsConfig()
    store = FeatureStore(data.store.folder / "features", {"audio": "is10"})
    missing = [item for item in data.items if not _audio_cached(store, item.key, limits)]
    paths = [item.row.path for item in missing]
    found_all = map_sandboxed_audio_features(paths, limits, workers)
    description = "extracting audio features"
    for index, found in track(found_all, total=len(missing), description=description):
        item = missing[index]
        record: dict[str, Any] = {"video_id": item.row.video_id, "status": found.status}
        if found.features is not None:
            rows = found.features[None]
        else:
            rows = np.zeros((0, IS10_SIZE))
            record.update(reason=found.reason, limits=limits.model_dump())
        if found.reason:
            log.warning("%s: %s", item.row.rel_path, found.reason)
        store.save(item.key, rows, record)
    features, reasons = {}, {}
    for item in data.items:
        array, record = store.load(item.key)
        features[item.row.video_id] = array
        if record["status"] != "ok":
            reasons[item.row.video_id] = record["status"]
    return features, reasons


def _audio_cached(store: FeatureStore, key: str, limits: LimitsConfig) -> bool:
    """True if the video's audio entry is stored and was not decided under other limits."""
    if not store.has(key):
        return False
    decided = store.load(key)[1].get("limits")
    return decided is None or decided == limits.model_dump()
