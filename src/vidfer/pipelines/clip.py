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

from vidfer.config import EvalConfig, RunConfig, RunKind, SamplerConfig
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
from vidfer.models.base import TemporalGeometry, VideoModel
from vidfer.models.contract import InputContract
from vidfer.models.pooling import TemporalPooling
from vidfer.models.trained import INIT_PARAMS, load_run_model
from vidfer.models.weights import carried_input, weights_input
from vidfer.pipelines.base import Scored, Scorer
from vidfer.pipelines.video_attention import extract_run_features
from vidfer.training.trainer import TrainedRun, TrainResult, train_clip_model
from vidfer.viz.sampling import write_sampling_maps


def _architecture(config: RunConfig) -> VideoModel:
    """The config's model on the meta device: its architecture only, no weights made or read."""
    params = {k: v for k, v in config.model.params.items() if k not in INIT_PARAMS}
    with torch.device("meta"):
        return model_from_config(
            config.model.model_copy(update={"params": params, "weights": None}), 2
        )


def check_clip_lengths(config: RunConfig) -> None:
    """Check the clip lengths of a config against its model before anything runs.

    A model that is not temporally dense (C3D: 16 frames; FstCN: a pair of ``2 x clip_len``)
    takes clips of exactly its receptive field: the sampler's clips (``sampler.clip_len``, twice
    for ``clip_pairs``) and, outside ``views`` mode, the evaluation windows (``eval.clip_len``)
    must have that many frames. A dense model without temporal padding takes clips and windows
    of at least its receptive field.

    Raises:
        ConfigError: naming the options that disagree and the length the model takes.
    """
    _check_lengths(config, _architecture(config))


def _check_lengths(config: RunConfig, model: VideoModel) -> None:
    """:func:`check_clip_lengths` with the config's model already built."""
    needed = model.geometry.receptive_field
    per_clip = _frames_per_clip(config.sampler, config.sampler.clip_len, needed)
    name = config.model.name
    if model.geometry.dense:
        _check_unpadded_lengths(config, model.geometry, per_clip)
        return
    if per_clip != needed:
        fix = needed * config.sampler.clip_len // per_clip
        raise ConfigError(
            f"model {name!r} takes clips of {needed} frames, but sampler {config.sampler.name!r} "
            f"with clip_len {config.sampler.clip_len} gives {per_clip}; set sampler.clip_len: "
            f"{fix} (or the model's length in model.params)"
        )
    if config.eval.mode != "views" and config.eval.clip_len != needed:
        raise ConfigError(
            f"model {name!r} scores windows of {needed} frames, but eval.clip_len is "
            f"{config.eval.clip_len}; set eval.clip_len: {needed} (or leave it out)"
        )


def _check_unpadded_lengths(config: RunConfig, geometry: TemporalGeometry, per_clip: int) -> None:
    """A dense model without temporal padding (e.g. ``c3d`` with ``dense: true``) needs clips
    and evaluation windows of at least its receptive field (a whole video shorter than it is
    padded by edge repetition when scored)."""
    if geometry.padding != 0 or geometry.global_time:
        return
    needed, name = geometry.receptive_field, config.model.name
    if per_clip < needed:
        raise ConfigError(
            f"model {name!r} without temporal padding needs clips of at least {needed} frames, "
            f"but sampler {config.sampler.name!r} with clip_len {config.sampler.clip_len} gives "
            f"{per_clip}; set sampler.clip_len: {needed} or more"
        )
    if config.eval.mode == "windows" and config.eval.clip_len < needed:
        raise ConfigError(
            f"model {name!r} without temporal padding needs windows of at least {needed} "
            f"frames, but eval.clip_len is {config.eval.clip_len}; set eval.clip_len: {needed}"
        )


def _frames_per_clip(sampler: SamplerConfig, clip_len: int, needed: int) -> int:
    """Frames in one clip of the sampler with ``clip_len`` (twice it for clip pairs)."""
    built = sampler_from_config(sampler.model_copy(update={"clip_len": clip_len}))
    return int(built.frames(np.zeros(1, dtype=np.int64), 10 * needed).shape[1])


def check_frame_size(config: RunConfig, contract: InputContract) -> None:
    """Check ``transforms.size`` against a model that takes one frame side only.

    Raises:
        ConfigError: naming ``transforms.size`` and the side the model takes.
    """
    if contract.fixed_size and contract.size != config.transforms.size:
        raise ConfigError(
            f"model {config.model.name!r} takes frames of {contract.size} x {contract.size} "
            f"pixels, but transforms.size is {config.transforms.size}; set transforms.size: "
            f"{contract.size} (or the model's in_size in model.params)"
        )


def with_input_contract(config: RunConfig) -> RunConfig:
    """The config with its model's input contract wherever it writes nothing, then checked.

    The contract is the architecture's, taking its initial weights'
    (:func:`vidfer.models.weights.weights_input`) where the architecture leaves a choice. It
    gives the normalisation (``transforms.mean`` and ``std``: a torchvision preset's, VGG-Face's
    0-255 less its mean, the FER2013 model's ``[-1, 1]``), the frame side (``transforms.size``)
    and, for a model of fixed clips, the clip length (``sampler.clip_len`` and
    ``eval.clip_len``). Options written in the config win; a frame side or clip length a fixed
    model cannot take is an error. The run folder records the result, so evaluation and
    prediction use it.

    Raises:
        ConfigError: naming the option the model cannot take (:func:`check_clip_lengths`,
            :func:`check_frame_size`).
        CheckpointError: if the weights file or run folder cannot be read.
    """
    model = _architecture(config)
    contract = model.input_contract().taking(weights_input(config.model))
    transforms, sampler, evaluation = config.transforms, config.sampler, config.eval
    written = transforms.model_fields_set
    normalisation = contract.normalisation(len(transforms.mean))
    if normalisation is not None and not {"mean", "std"} & written:
        mean, std = normalisation
        transforms = transforms.model_copy(update={"mean": mean, "std": std})
    if contract.size is not None and "size" not in written:
        transforms = transforms.model_copy(update={"size": contract.size})
    if contract.frames is not None and "clip_len" not in sampler.model_fields_set:
        # Frames per clip over clip_len: 2 for clip pairs, else 1.
        ratio = _frames_per_clip(sampler, sampler.clip_len, contract.frames) // sampler.clip_len
        sampler = sampler.model_copy(update={"clip_len": max(contract.frames // ratio, 1)})
        if "clip_len" not in evaluation.model_fields_set:
            evaluation = evaluation.model_copy(update={"clip_len": contract.frames})
    resolved = config.model_copy(
        update={"transforms": transforms, "sampler": sampler, "eval": evaluation}
    )
    _check_lengths(resolved, model)
    check_frame_size(resolved, contract)
    return resolved


def with_weights_architecture(config: RunConfig) -> RunConfig:
    """The config with the architecture and clip that a model's weights fix (Hugging Face's
    VideoMAE and TimeSformer: :mod:`vidfer.models.hf_video`); every other config as it is.

    The weights' (or, without weights, the written architecture's) transformers config goes into
    ``model.params.architecture``, so that the run is rebuilt without the weights; its frames into
    ``sampler.clip_len`` and ``eval.clip_len`` and its frame size into ``transforms.size`` unless
    the config writes them (clip lengths written are checked by :func:`check_clip_lengths`).

    Raises:
        ConfigError: if ``transforms.size`` is written and is not the model's frame size.
    """
    carried = carried_input(config.model)
    if carried is None:
        return config
    size = config.transforms.size
    if "size" in config.transforms.model_fields_set and size != carried.size:
        raise ConfigError(
            f"transforms.size={size}: model {config.model.name!r} takes frames of "
            f"{carried.size} x {carried.size} pixels (image_size of its weights' config); set "
            f"transforms.size: {carried.size} or leave it out"
        )
    model = config.model.model_copy(update={"params": {**config.model.params, **carried.params}})
    updates: dict[str, object] = {"model": model}
    for name, field, value in (
        ("sampler", "clip_len", carried.frames),
        ("eval", "clip_len", carried.frames),
        ("transforms", "size", carried.size),
    ):
        section = getattr(config, name)
        if field not in section.model_fields_set:
            updates[name] = section.model_copy(update={field: value})
    return config.model_copy(update=updates)


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
        """What the initial weights fix filled in (:func:`with_weights_architecture`), then the
        model's input contract filled in and checked (:func:`with_input_contract`)."""
        return with_input_contract(with_weights_architecture(config))

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
