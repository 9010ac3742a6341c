"""Device choice, seeding and mixed precision: CPU by default, CUDA when present."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from vidfer.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: if CUDA is asked for and none is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"option 'train.device': unknown device {name!r}; use auto, cpu or cuda"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "option 'train.device': CUDA was asked for but no GPU is available; use auto or cpu"
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


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[object]:
    """bfloat16 autocast on CUDA when enabled; a no-op on the CPU (float32 stays exact)."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
