"""Device choice, seeding and the GPU path's switches: CPU by default, CUDA when present.

The switches of ``train`` (``amp``, ``channels_last``, ``compile``) are off or inactive on the
CPU by default, so that the CPU path computes exactly what it computes without them:

- ``amp``: autocast to bfloat16 or float16 (``auto``: bfloat16 on a CUDA device that supports it,
  float32 on the CPU). float16 gradients are scaled (:func:`grad_scaler`) so that small ones do
  not vanish.
- ``channels_last``: the model's weights and the clips in ``channels_last_3d`` memory format (the
  layout tensor cores and cuDNN's fastest 3D convolutions want).
- ``compile``: the training forward (:class:`ClipScorer`) compiled with ``torch.compile``.

Host-to-device copies are ``non_blocking`` and the loader pins memory only for a CUDA device.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Literal

import numpy as np
import torch
from torch import nn

from vidfer.errors import ConfigError

AmpMode = Literal["auto", "off", "bf16", "fp16"]


def resolve_device(name: str, *, option: str = "train.device") -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Args:
        name: The device's name.
        option: The option or flag that gave it, named in the errors (e.g.
            ``data.prepare.faces.device``, ``--device``).

    Raises:
        ConfigError: if CUDA is asked for and none is available, or ``cuda:N`` beyond the
            machine's GPUs.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"option {option!r}: unknown device {name!r}; use auto, cpu or cuda"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"option {option!r}: CUDA was asked for but no GPU is available; use auto or cpu"
        )
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise ConfigError(
                f"option {option!r}: {name} was asked for but this machine has {count} GPU(s), "
                f"cuda:0 to cuda:{count - 1}; use one of them or cuda"
            )
    return device


def seed_everything(seed: int, *, deterministic: bool) -> None:
    """Seed Python, numpy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def amp_dtype(device: torch.device, mode: AmpMode) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device``, or None for float32."""
    if mode == "auto":
        supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if supported else None
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def autocast(device: torch.device, mode: AmpMode) -> contextlib.AbstractContextManager[object]:
    """Autocast as ``train.amp`` asks; a no-op for float32 (the CPU's ``auto``)."""
    dtype = amp_dtype(device, mode)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, mode: AmpMode) -> torch.amp.GradScaler:
    """Loss scaling for float16 autocast; disabled (a pass-through) for every other mode."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device, mode) == torch.float16)


def pin_memory(device: torch.device) -> bool:
    """Whether the loader should pin its batches: only for copies to a CUDA device."""
    return device.type == "cuda"


class ClipScorer(nn.Module):
    """The training forward as one module: clips through the model, pooled over time.

    One module holds every trained parameter (the model's and a learned pooling's), so that it
    is the one to wrap in ``torch.compile`` or ``DistributedDataParallel``; the model and the
    pooling are saved and evaluated on their own.

    Args:
        model: The video model.
        pooling: Its temporal pooling.
        channels_last: Convert the model's weights (in place; their values do not change) and
            its clips to ``channels_last_3d`` memory format.
    """

    def __init__(self, model: nn.Module, pooling: nn.Module, *, channels_last: bool) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.channels_last = channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last_3d)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Video scores ``(N, K)`` of clips ``(N, C, L, H, W)``."""
        if self.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return self.pooling(self.model(clips))  # (N, K, T') -> (N, K)
