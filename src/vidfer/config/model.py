"""The clip-model sections: sampler, transforms, model, pooling, optim, train and eval."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
)

from vidfer.config.base import Section


class SamplerConfig(Section):
    """A clip sampler from the registry and its parameters."""

    name: str = "uniform"
    clip_len: int = Field(16, ge=1)
    stride: int = Field(1, ge=1)
    num_clips: int = Field(1, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class TransformConfig(Section):
    """Clip augmentation (applied identically to every frame of a clip) and normalisation."""

    size: int = Field(112, ge=8)
    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip: float = Field(0.5, ge=0, le=1)
    rotation: float = Field(0.0, ge=0, le=180)
    color_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    mean: tuple[float, ...] = (0.43216, 0.394666, 0.37645)
    std: tuple[float, ...] = (0.22803, 0.22145, 0.216989)

    @field_validator("crop_scale")
    @classmethod
    def _scale_order(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high <= 1:
            raise ValueError("crop_scale must satisfy 0 < low <= high <= 1")
        return value


class AttentionConfig(Section):
    """An attention module between the model's features and its classifier."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(Section):
    """A model from the registry; ``params`` go to its builder; optional ``attention`` module.

    Attributes:
        weights: Initial weights of the backbone (:mod:`vidfer.models.weights`): a published
            weights name of the family (e.g. ``KINETICS400_V1``), a checkpoint file, or a vidfer
            run folder; a relative path is relative to the config's folder. None: the builder's
            own initialisation.
        pooling_level: Where time is pooled (thesis section 2.2.4): ``score`` classifies every
            step of the features and ``pooling`` pools the score map; ``feature`` averages the
            features of a clip over time before the classifier (one score per clip in
            training; ``pooling.name`` must then be ``avg``). On whole videos a feature-level
            model scores the features of the whole video (dense, one pass or chunks) or of each
            window (``eval.mode: windows``) averaged, which the map of per-step scores averaged
            gives exactly (the classifier is linear; :mod:`vidfer.evaluation.scoring`).
    """

    name: str = "resnet3d_18"
    params: dict[str, Any] = Field(default_factory=dict)
    attention: AttentionConfig | None = None
    weights: str | None = None
    pooling_level: Literal["score", "feature"] = "score"


class PoolingConfig(Section):
    """Temporal pooling of the score map into video scores."""

    name: str = "avg"
    params: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(Section):
    """Optimiser with separate learning rate and weight decay for backbone and head.

    ``freeze``, ``layer_decay`` and ``freeze_bn`` are fine-tuning controls of clip models.

    Attributes:
        freeze: Stages of a clip model's backbone that are not trained (e.g. ``[stem, layer1]``
            for the 3D ResNets): their weights and BatchNorm statistics stay as loaded. The
            stages are the backbone's top-level modules, input to output
            (:mod:`vidfer.training.finetune`); an unknown name is an error that lists them.
        layer_decay: Layer-wise learning-rate decay ``d`` in (0, 1]: the head trains at
            ``head_lr`` (or ``lr``), the last stage at ``lr * d``, the one before at
            ``lr * d**2``, and so on towards the input; 1 is off.
        freeze_bn: Keep every BatchNorm layer of the backbone in eval mode (running statistics
            as loaded; affine parameters still train unless their stage is frozen).
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    head_lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    head_weight_decay: float | None = Field(None, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["none", "cosine", "step"] = "cosine"
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: int = Field(0, ge=0)
    freeze: list[str] = Field(default_factory=list)
    layer_decay: float = Field(1.0, gt=0, le=1)
    freeze_bn: bool = False


class TrainConfig(Section):
    """The training loop.

    Attributes:
        checkpoint_every_steps: Also write ``checkpoints/last.pt`` every this many optimiser
            steps inside an epoch, so that a killed run resumes mid-epoch (None: at epoch ends).
        on_nan: A batch whose loss is NaN or infinite stops the run (``stop``, naming the step
            and videos) or is skipped without a gradient step (``skip``).
        loader_timeout_s: With loader workers, a batch that takes longer than this stops the run
            with an error naming the videos being loaded (a stalled read never hangs the run).
        amp: Mixed precision: ``auto`` (bfloat16 autocast on a CUDA device that supports it,
            float32 on the CPU), ``off``, ``bf16`` or ``fp16`` (with loss scaling) on any device
            (``true``/``false`` mean ``auto``/``off``).
        channels_last: Weights and clips in ``channels_last_3d`` memory format (faster 3D
            convolutions on GPUs with tensor cores).
        compile: Compile the training forward pass with ``torch.compile``.
    """

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    accumulate: int = Field(1, ge=1)
    clip_grad: float | None = Field(None, gt=0)
    patience: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0)
    device: str = "auto"
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = True
    checkpoint_every_steps: int | None = Field(None, ge=1)
    on_nan: Literal["stop", "skip"] = "stop"
    loader_timeout_s: float = Field(300.0, gt=0)
    # Videos (video_id) plotted at the end: a learning sampler's sampling maps (training videos)
    # and an attention module's maps (held-out videos); empty: the first four of each.
    plot_videos: list[str] = Field(default_factory=list)
    # TensorBoard event files in RUN/tensorboard/ (curves, lr, confusion, sampling maps).
    tensorboard: bool = False

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_switch(cls, value: Any) -> Any:
        # Earlier configs wrote a switch: true was today's auto.
        if isinstance(value, bool):
            return "auto" if value else "off"
        return value


class ViewsConfig(Section):
    """Multi-view testing (``eval.mode: views``; FstCN §2.4)."""

    clips: int = Field(5, ge=1)  # evenly spaced clips (pairs) per video, from the run's sampler
    crops: Literal[1, 9] = 9  # centre crop, or the 3x3 grid of crops
    flip: bool = True  # and their horizontal flips
    resize: int | None = Field(None, ge=8)  # short side before cropping (None: as stored)
    view_fusion: Literal["sci", "mean"] = "sci"  # over the crops of one clip (eq. 6)
    clip_fusion: Literal["max", "mean"] = "max"  # over the clips (eq. 7)


class EvalConfig(Section):
    """Whole-video evaluation.

    Attributes:
        mode: ``dense`` scores each video in one pass when the model allows it, ``windows`` slides
            a clip of ``clip_len`` frames with ``stride`` over the video, ``views`` scores
            evenly spaced clips from the run's sampler in several crops and fuses them
            (``views``).
        clip_len: Window length for ``windows`` mode (and the minimum input length).
        stride: Window step for ``windows`` mode.
        batch_size: Windows per forward pass in ``windows`` mode.
        chunk_frames: Longer videos are scored in chunks of this many frames (overlapping by
            the model's receptive field minus its stride, stitched into the one-pass score map),
            so that memory does not grow with the video's length; raised to the model's
            minimum (receptive field + 2 strides). None scores every video in one pass.
        pooling: Video-level temporal pooling at test time (e.g. ``softmax`` with ``gamma``, the
            thesis's ``gamma_p``); None pools with the trained model's own pooling. Only
            poolings without learned parameters are accepted here.
    """

    mode: Literal["dense", "windows", "views"] = "dense"
    clip_len: int = Field(16, ge=1)
    stride: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    chunk_frames: int | None = Field(256, ge=1)
    pooling: PoolingConfig | None = None
    views: ViewsConfig = Field(default_factory=ViewsConfig)
