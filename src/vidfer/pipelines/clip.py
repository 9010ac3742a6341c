"""Clip models trained end to end (3D CNNs, FstCN, C3D, attention): the ``clip`` kind of run.

Training is :func:`vidfer.training.trainer.train_clip_model`; this module adds the steps a clip
run takes after training (the learned sampling maps of the thesis's chapter 3, the attention
maps of its chapter 4) and the scoring of whole videos that evaluation and ``vidfer predict``
share (:class:`vidfer.evaluation.evaluate.ClipEvaluator`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from vidfer.config import EvalConfig, RunConfig, RunKind
from vidfer.data.dataset import choose_items
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.data.sampler_zoo import sampler_from_config
from vidfer.data.stochastic_softmax import PositionSampler
from vidfer.device import resolve_device
from vidfer.errors import ConfigError
from vidfer.evaluation.attention_maps import write_attention_maps
from vidfer.evaluation.evaluate import ClipEvaluator, EvalOutcome
from vidfer.io.run_folder import RunDir
from vidfer.models import model_from_config
from vidfer.models.base import VideoModel
from vidfer.models.pooling import TemporalPooling
from vidfer.models.trained import INIT_PARAMS, load_run_model
from vidfer.models.weights import input_normalisation
from vidfer.pipelines.base import Scored, Scorer
from vidfer.pipelines.video_attention import extract_run_features
from vidfer.training.trainer import TrainedRun, TrainResult, train_clip_model
from vidfer.viz.sampling import write_sampling_maps


def check_clip_lengths(config: RunConfig) -> None:
    """Check the clip lengths of a config against its model before anything runs.

    A model that is not temporally dense (C3D: 16 frames; FstCN: a pair of ``2 x clip_len``)
    takes clips of exactly its receptive field: the sampler's clips (``sampler.clip_len``, twice
    for ``clip_pairs``) and, outside ``views`` mode, the evaluation windows (``eval.clip_len``)
    must have that many frames.

    Raises:
        ConfigError: naming the options that disagree and the length the model takes.
    """
    params = {k: v for k, v in config.model.params.items() if k not in INIT_PARAMS}
    with torch.device("meta"):  # the architecture only: no weights are made or read
        model = model_from_config(
            config.model.model_copy(update={"params": params, "weights": None}), 2
        )
    if model.geometry.dense:
        return
    needed = model.geometry.receptive_field
    sampler = sampler_from_config(config.sampler)
    per_clip = sampler.frames(np.zeros(1, dtype=np.int64), 10 * needed).shape[1]
    name = config.model.name
    if per_clip != needed:
        raise ConfigError(
            f"model {name!r} takes clips of {needed} frames, but sampler {config.sampler.name!r} "
            f"with clip_len {config.sampler.clip_len} gives {per_clip}; make them agree"
        )
    if config.eval.mode != "views" and config.eval.clip_len != needed:
        raise ConfigError(
            f"model {name!r} scores windows of {needed} frames, but eval.clip_len is "
            f"{config.eval.clip_len}; set eval.clip_len: {needed} (or leave it out)"
        )


def with_weights_normalisation(config: RunConfig) -> RunConfig:
    """The config with its initial weights' input normalisation, unless it writes its own.

    A torchvision weights name brings its preset's mean and std; the FER2013-pretrained
    ``i3d_mini_xception`` its ``[-1, 1]`` range. ``transforms.mean`` or ``transforms.std`` written
    in the config win. The run folder records the result, so evaluation and prediction use it.
    """
    found = input_normalisation(config.model, len(config.transforms.mean))
    if found is None or {"mean", "std"} & config.transforms.model_fields_set:
        return config
    mean, std = found
    transforms = config.transforms.model_copy(update={"mean": mean, "std": std})
    return config.model_copy(update={"transforms": transforms})


def sampling_maps(done: TrainedRun) -> None:
    """A learning sampler's draws and final distribution over the first training videos."""
    if isinstance(done.sampler, PositionSampler):
        write_sampling_maps(
            done.run.folder, done.sampler, done.train_items, done.config.train.plot_videos
        )


def attention_maps(done: TrainedRun) -> None:
    """The attention module's maps of the best model on the first held-out videos."""
    held_out = done.data.split("test") or done.data.split("val")
    if done.config.model.attention is None or done.best is None or not held_out:
        return
    chosen = choose_items(held_out, done.config.train.plot_videos, "held-out videos")
    write_attention_maps(
        done.run.folder, done.best, chosen, done.data.store, done.config, done.device
    )


class _Counted:
    """The pieces of a video, passed through while their frames are counted."""

    def __init__(self, pieces: Iterable[np.ndarray]) -> None:
        self.pieces = pieces
        self.frames = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for piece in self.pieces:
            self.frames += len(piece)
            yield piece


class ClipPipeline:
    """A video model over clips, a temporal pooling, whole-video scoring."""

    kind: RunKind = "clip"

    def train(self, config: RunConfig, run: RunDir, *, resume: bool) -> TrainResult:
        """Train epoch by epoch (exact resume), then the maps of the sampler and attention."""
        check_clip_lengths(config)
        return train_clip_model(config, run, resume=resume, after=(sampling_maps, attention_maps))

    def resolved(self, config: RunConfig) -> RunConfig:
        """The initial weights' normalisation filled in (:func:`with_weights_normalisation`)."""
        return with_weights_normalisation(config)

    def evaluate(self, run: RunDir, split: str) -> EvalOutcome:
        """The best model's video scores on one split.

        Raises:
            ConfigError: if the split has no usable video.
        """
        config = run.config()
        device = resolve_device(config.train.device)
        model, pooling = load_run_model(run, device)
        data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
        items = data.split(split)
        if not items:
            raise ConfigError(f"{config.data.manifest}: no usable video in split {split!r}")
        return ClipEvaluator.of(model, pooling, config, device).evaluate(items, data.store)

    def scorer(
        self, run: RunDir, video: Path, settings: EvalConfig, device: torch.device
    ) -> Scorer:
        """Per-frame scores of the score map, the video's as in evaluation.

        In ``views`` mode (e.g. FstCN's clip pairs and crops) the video has one fused score and
        no per-frame one.
        """
        model, pooling = _scoring_model(run, device)
        return clip_scorer(model, pooling, run.config(), settings, device)

    def model_name(self, config: RunConfig) -> str:
        """The model's registered name."""
        return config.model.name

    def video_features(
        self, run: RunDir, data: PreparedDataset, device: torch.device
    ) -> dict[str, np.ndarray]:
        """The backbone's features of every whole video, averaged over time (cached)."""
        found = extract_run_features(run, data, device)
        return {video: np.asarray(seq.features).mean(axis=0) for video, seq in found.items()}


def _scoring_model(run: RunDir, device: torch.device) -> tuple[VideoModel, TemporalPooling]:
    """The run's trained model, read once for the videos scored one after another (``vidfer
    predict`` on many videos); read again when the checkpoint changes."""
    checkpoint = run.best_or_last()
    return _cached_model(run.folder.resolve(), checkpoint.stat().st_mtime_ns, str(device))


@functools.lru_cache(maxsize=1)
def _cached_model(folder: Path, stamp: int, device: str) -> tuple[VideoModel, TemporalPooling]:
    """:func:`load_run_model` memoised on the run folder, its checkpoint's time and the device."""
    return load_run_model(RunDir(folder), device)


def clip_scorer(
    model: VideoModel,
    pooling: TemporalPooling,
    config: RunConfig,
    settings: EvalConfig,
    device: torch.device,
) -> Scorer:
    """The scorer of a new video by a clip model (the run's, or a stand-in with its geometry
    such as an exported model run by ONNX Runtime): per-frame and video scores as evaluation
    gives them."""
    evaluator = ClipEvaluator.of(model, pooling, config, device, settings)

    def score(pieces: Iterable[np.ndarray]) -> Scored:
        counted = _Counted(pieces)
        scores = evaluator.score(counted)
        video_probs = scores.video.softmax(dim=0).numpy()  # (K,)
        score_map = scores.score_map
        if score_map is None:
            return Scored(None, video_probs)
        per_frame = score_map.per_frame(counted.frames).softmax(dim=0).T  # (K, T) -> (T, K)
        # The pooling's temporal weights for the predicted class: which steps decided.
        weights = evaluator.pooling.weights(score_map.scores.unsqueeze(0))  # (1, K, T')
        chosen = weights[0, int(video_probs.argmax())].cpu()
        steps = [(float(c), float(w)) for c, w in zip(score_map.centres, chosen, strict=True)]
        return Scored(per_frame.cpu().numpy(), video_probs, step_weights=steps)

    return score
