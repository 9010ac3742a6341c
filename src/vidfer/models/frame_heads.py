"""The heads of frame-feature pipelines: what a run's checkpoint holds.

:class:`Standardised` puts the inputs in training-set units (optionally PCA-whitened) before an
SVM or a recurrent model; :class:`FrameAverage` averages a frame CNN's per-frame probabilities;
:func:`build_head` builds the head a ``frames`` config names, empty or shaped like a checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vidfer.config import ClassifierConfig, FramesConfig
from vidfer.errors import ConfigError
from vidfer.models.recurrent import SEQUENCE_MODELS
from vidfer.models.svm import Kernel, SVMHead, fit_svm

SVMS = {"linear_svm": "linear", "rbf_svm": "rbf"}


class Standardised(nn.Module):
    """Inputs standardised by training statistics (PCA-whitened if asked), then ``classifier``.

    Args:
        classifier: Called as ``classifier(x)`` or, with a mask, ``classifier(x, mask)``.
        dim: Input channels.
        pca: Principal components to keep (whitened), or None.
    """

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    projection: torch.Tensor  # (D, P) with PCA, else (0, 0)

    def __init__(self, classifier: nn.Module, dim: int, pca: int | None = None) -> None:
        super().__init__()
        self.classifier = classifier
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("projection", torch.zeros((dim, pca) if pca else (0, 0)))

    def fit(self, rows: np.ndarray) -> None:
        """Set the statistics (and principal axes) from training rows ``(N, D)``.

        Raises:
            ConfigError: if fewer training rows or channels than PCA components are given.
        """
        std = rows.std(axis=0)
        # Channels (nearly) constant in training would blow up unseen variation tenfold at most.
        floor = max(0.1 * float(std.mean()), 1e-6)
        self.mean.copy_(torch.from_numpy(rows.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.maximum(std, floor)))
        keep = self.projection.shape[1]
        if keep:
            if keep > min(rows.shape):
                raise ConfigError(
                    f"frames.pca: {keep} components from {rows.shape[0]} training videos of "
                    f"{rows.shape[1]} values; use at most {min(rows.shape)}"
                )
            z = (rows - rows.mean(axis=0)) / np.maximum(std, floor)
            _, singular, axes = np.linalg.svd(z, full_matrices=False)  # axes: (min(N, D), D)
            scale = singular[:keep] / np.sqrt(max(len(rows) - 1, 1))  # component std
            # (D, P): project on the axes, then unit variance per component (whitening).
            self.projection.copy_(torch.from_numpy(axes[:keep].T / np.maximum(scale, 1e-12)))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` inputs in training-set units (``(..., P)`` with PCA)."""
        z = (x - self.mean) / self.std
        return z @ self.projection if self.projection.numel() else z

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``(B, D)`` vectors, or of ``(B, T, D)`` sequences with a mask ``(B, T)``."""
        z = self.standardise(x)
        return self.classifier(z) if mask is None else self.classifier(z, mask)


class FrameAverage(nn.Module):
    """Mean over the real frames of per-frame class probabilities (log, for cross-entropy).

    Args:
        columns: For each dataset class, the CNN output column of the same name.
    """

    columns: torch.Tensor  # (K,)

    def __init__(self, columns: list[int]) -> None:
        super().__init__()
        self.register_buffer("columns", torch.tensor(columns))

    def per_frame(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, K_cnn)`` per-frame logits -> ``(B, T, K)`` probabilities of our classes."""
        probabilities = x.softmax(dim=-1)[..., self.columns]  # (B, T, K_cnn) -> (B, T, K)
        return probabilities / probabilities.sum(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, K_cnn)`` per-frame logits, mask ``(B, T)`` -> ``(B, K)`` log-probabilities."""
        probabilities = self.per_frame(x)
        weights = mask.unsqueeze(-1).to(x.dtype)  # (B, T) -> (B, T, 1)
        mean = (probabilities * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return mean.clamp(min=1e-12).log()


def build_head(
    frames: FramesConfig, dim: int, num_classes: int, state: dict[str, torch.Tensor] | None = None
) -> nn.Module:
    """The head of a pipeline: untrained, or shaped like a saved ``state`` to load into it."""
    name = frames.classifier.name
    if name == "average":
        columns = state["columns"].tolist() if state is not None else list(range(num_classes))
        return FrameAverage(columns)
    if name in SVMS:
        return svm_head(frames.classifier, dim, num_classes, frames.pca, state)
    return Standardised(SEQUENCE_MODELS[name](dim, num_classes, **frames.classifier.params), dim)


def svm_head(
    classifier: ClassifierConfig,
    dim: int,
    num_classes: int,
    pca: int | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Standardised:
    """Standardised (optionally PCA-whitened) SVMs: untrained, or shaped like a saved state."""
    prefix = "classifier."
    inner = {k[len(prefix) :]: v for k, v in (state or {}).items() if k.startswith(prefix)}
    kernel: Kernel = "linear" if classifier.name == "linear_svm" else "rbf"
    svm = SVMHead.from_state(inner) if inner else SVMHead(kernel, pca or dim, num_classes)
    return Standardised(svm, dim, pca)


def fit_svm_head(
    classifier: ClassifierConfig,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    pca: int | None = None,
    seed: int = 0,
) -> tuple[Standardised, dict[str, float]]:
    """Standardise on ``x``, grid-search on ``val`` (or cross-validate) and calibrate the SVMs.

    Args:
        classifier: ``linear_svm`` or ``rbf_svm``; ``params`` may give the ``C`` and
            ``gamma_scale`` grids.
        x: ``(N, D)`` training vectors.
        y: ``(N,)`` class indices.
        num_classes: K.
        val: ``(x, y)`` of the validation split.
        pca: Principal components to keep (whitened), or None.
        seed: Seed of the cross-validation folds.

    Returns:
        The fitted head and the chosen ``C`` (and ``gamma``).
    """
    head = svm_head(classifier, x.shape[1], num_classes, pca)
    head.fit(x)

    def transformed(rows: np.ndarray) -> np.ndarray:
        return head.standardise(torch.from_numpy(rows).float()).double().numpy()

    kernel: Kernel = "linear" if classifier.name == "linear_svm" else "rbf"
    fit = fit_svm(
        kernel,
        transformed(x),
        y,
        num_classes,
        val=None if val is None else (transformed(val[0]), val[1]),
        C=classifier.params.get("C"),
        gamma_scale=classifier.params.get("gamma_scale"),
        seed=seed,
    )
    head.classifier = fit.head
    return head, {"C": fit.C} if fit.gamma is None else {"C": fit.C, "gamma": fit.gamma}
