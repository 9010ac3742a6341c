"""The sections of the two commands that train from something other than a run config:
``vidfer train-frames`` (a frame CNN on still images) and ``vidfer video-attention`` (temporal
self-attention over a trained run's features).

Each is read from an optional YAML file (``--config``) and the command's flags, which override
it; :func:`vidfer.config.parse_section` validates them like every other section.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from vidfer.config.base import Section


class FrameTrainSettings(Section):
    """What ``vidfer train-frames`` trains and how.

    Attributes:
        model: A frame CNN name (:data:`~vidfer.models.frame_cnns.FRAME_CNNS`).
        params: Its parameters (e.g. ``{"kernel": 5, "maps": [64, 64, 128]}``).
        epochs: Maximum epochs.
        batch_size: Images per step.
        lr: Learning rate.
        optimizer: ``sgd`` (with ``momentum``) or ``adamw``.
        momentum: SGD momentum.
        weight_decay: Weight decay.
        patience: Stop after this many epochs without a better monitored value.
        monitor: ``loss`` (validation loss) or ``accuracy`` (validation accuracy) chooses the
            best weights and stops early; accuracy suits feature pre-training, where the loss
            of an over-confident model rises while what it learned still improves.
        seed: Seed of the initialisation, the hold-out, the order and the augmentation.
        val_fraction: Share of the training images (videos) held out when the source has no
            validation split.
        every: For video sources, one frame in ``every``.
        init: None (the model's defaults), ``"pretrained"`` (the model's pretrained weights) or
            the folder of a frame run to fine-tune (same model; its parameters are used).
        crop_scale: Smallest area share of the random square training crops.
        flip: Random horizontal flips.
        rotation: Largest random rotation in degrees.
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    model: str = "kahou_cnn"
    params: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(10, ge=1)
    monitor: Literal["loss", "accuracy"] = "loss"
    seed: int = 0
    val_fraction: float = Field(0.1, ge=0, lt=1)
    every: int = Field(1, ge=1)
    init: str | None = None
    crop_scale: float = Field(0.8, gt=0, le=1)
    flip: bool = True
    rotation: float = Field(0.0, ge=0, le=180)
    device: str = "auto"


class VideoAttentionSettings(Section):
    """What ``vidfer video-attention`` trains over a run's features.

    Attributes:
        range_frames: Longest window of feature steps a training video contributes per epoch
            (thesis: 16 to 256; longer videos are cropped at random, shorter ones used whole).
        epochs: Maximum epochs.
        patience: Stop after this many epochs without a better validation loss.
        batch_size: Videos per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        heads: Attention heads.
        d_att: Channels per head.
        dropout: Dropout before the classifier.
        positional: Sinusoidal positional encoding of the steps.
        seed: Seed of the initialisation, the order and the windows.
    """

    range_frames: int = Field(128, ge=1)
    epochs: int = Field(40, ge=1)
    patience: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    heads: int = Field(4, ge=1)
    d_att: int = Field(64, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    positional: bool = False
    seed: int = 0
