"""The clip-model sections: sampler, transforms, model, pooling, optim, train and eval."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
)

from vidfer.config.base import Section


class SamplerConfig(Section):
    """A clip sampler from the registry and its parameters.

    Attributes:
        name: A sampler of :data:`~vidfer.registry.SAMPLERS`: ``uniform``, ``center``,
            ``every_window``, ``temporal_resize``, ``strided``, ``clip_pairs`` (FstCN), and the
            learning ``stochastic_softmax``, ``reinforce``, ``guided``.
        clip_len: Frames per clip.
        stride: Step between the frames of a clip, in frames (1: consecutive frames).
        num_clips: Clips drawn per video and epoch (the learning samplers take 1).
        params: The sampler's own options (e.g. ``gamma``, ``warmup``, ``explore`` of
            ``stochastic_softmax``).
    """

    name: str = "uniform"
    clip_len: int = Field(16, ge=1)
    stride: int = Field(1, ge=1)
    num_clips: int = Field(1, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class TransformConfig(Section):
    """Clip augmentation (applied identically to every frame of a clip) and normalisation.

    Attributes:
        size: Side of the square crop a clip is given to the model at (a random resized crop in
            training, a resize and centre crop in evaluation).
        crop_scale: Range of the area share of the random resized crop.
        flip: Probability of a horizontal flip.
        rotation: Largest random rotation, in degrees.
        color_jitter: Brightness, contrast, saturation and hue of the colour jitter (0: none).
        mean: Per-channel mean of the [0, 1] pixels, subtracted. Left out, the model's input
            contract gives it (its weights' normalisation).
        std: Per-channel standard deviation the pixels are divided by; as ``mean``.
    """

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
    """An attention module between the model's features and its classifier.

    Attributes:
        name: A module of :data:`~vidfer.registry.ATTENTIONS`: ``mask``, ``context_mask``,
            ``stn``, ``self_attention``.
        params: The module's options (e.g. ``dims``, ``hidden``, ``combine``, ``heads``).
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(Section):
    """A model from the registry; ``params`` go to its builder; optional ``attention`` module.

    Attributes:
        name: A model family of :data:`~vidfer.registry.MODELS` (``vidfer models`` lists them).
        params: Options of the family's builder (e.g. ``width``, ``temporal_stride``,
            ``temporal_padding``).
        attention: An attention module between the features and the classifier (None: none).
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
    """Temporal pooling of the score map into video scores.

    Attributes:
        name: A pooling of :data:`~vidfer.registry.POOLINGS`: ``avg``, ``max``, ``softmax``,
            ``adaptive_softmax``.
        params: The pooling's options (e.g. ``gamma`` of ``softmax``).
    """

    name: str = "avg"
    params: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(Section):
    """Optimiser with separate learning rate and weight decay for backbone and head.

    ``freeze``, ``layer_decay`` and ``freeze_bn`` are fine-tuning controls of clip models.

    Attributes:
        name: ``adamw`` or ``sgd`` (with ``momentum``).
        lr: Learning rate of the backbone.
        head_lr: Learning rate of the head (None: ``lr``).
        weight_decay: Weight decay of the backbone.
        head_weight_decay: Weight decay of the head (None: ``weight_decay``).
        momentum: SGD momentum.
        schedule: Learning-rate schedule over the epochs: ``none``, ``cosine`` or ``step``.
        step_size: Epochs between two decays of the ``step`` schedule.
        gamma: Factor of each decay of the ``step`` schedule.
        warmup_epochs: Epochs of linear warm-up before the schedule.
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
        epochs: Maximum epochs.
        batch_size: Clips per optimiser step; with several processes the global batch, which
            each of N processes loads ``batch_size / N`` of.
        accumulate: Batches whose gradients are summed before each optimiser step.
        clip_grad: Largest gradient norm (None: no clipping).
        patience: Stop after this many epochs without a better validation loss (None: no early
            stopping).
        num_workers: Loader processes reading and augmenting clips (0: in the training process).
        device: ``auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda``.
        deterministic: Ask torch for deterministic kernels (``torch.use_deterministic_algorithms``).
        plot_videos: Videos (``video_id``) plotted at the end: a learning sampler's sampling maps
            (training videos) and an attention module's maps (held-out videos); empty: the first
            four of each.
        tensorboard: Also write TensorBoard event files into ``RUN/tensorboard/`` (curves, learning
            rate, confusion matrices, sampling maps).
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
    plot_videos: list[str] = Field(default_factory=list)
    tensorboard: bool = False

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_switch(cls, value: Any) -> Any:
        # Earlier configs wrote a switch: true was today's auto.
        if isinstance(value, bool):
            return "auto" if value else "off"
        return value


class ViewsConfig(Section):
    """Multi-view testing (``eval.mode: views``; FstCN §2.4).

    Attributes:
        clips: Evenly spaced clips (pairs) per video, drawn by the run's sampler.
        crops: 1: the centre crop; 9: the 3x3 grid of crops.
        flip: Also the horizontal flip of every crop.
        resize: Short side of the frames before cropping (None: as stored).
        view_fusion: Fusion of the views of one clip: ``sci`` (sparsity concentration index,
            eq. 6) or ``mean``.
        clip_fusion: Fusion of the clips: ``max`` (per class, eq. 7) or ``mean``.
    """

    clips: int = Field(5, ge=1)
    crops: Literal[1, 9] = 9
    flip: bool = True
    resize: int | None = Field(None, ge=8)
    view_fusion: Literal["sci", "mean"] = "sci"
    clip_fusion: Literal["max", "mean"] = "max"


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
