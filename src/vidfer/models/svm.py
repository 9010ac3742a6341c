"""One-vs-rest SVMs on video vectors, fitted by scikit-learn and run as a torch module.

Kahou et al. classify k-bin pooled CNN outputs with an RBF SVM whose C and gamma come from a grid
search; Xu et al. classify mean/variance aggregates (and C3D features) with a linear one-vs-rest
SVM. Both are fitted here with scikit-learn, one binary SVM per class (class k against the rest),
with the hyper-parameters chosen on the validation split (or by 3-fold cross-validation of the
training split when there is none). The fitted SVMs are then copied into :class:`SVMHead`, whose
tensors are plain weights: a run's checkpoint stays a safe ``weights_only`` state dict, and the
head scores on any device like the other models.

Probabilities for fusion are ``softmax(decisions / T)``, the temperature T fitted by maximum
likelihood (temperature scaling) on decision values the SVMs computed for videos they were not
trained on (cross-validation folds of the training split).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC, LinearSVC
from torch import nn

from vidfer.errors import ConfigError

log = logging.getLogger(__name__)

Kernel = Literal["linear", "rbf"]


class SVMHead(nn.Module):
    """Calibrated log-probabilities of K one-vs-rest SVMs: ``(N, D) -> (N, K)``.

    Args:
        kernel: ``linear`` or ``rbf``.
        dim: Input dimension D.
        num_classes: K.
        support: Total number of support vectors over the K SVMs (``rbf`` only).
    """

    weight: torch.Tensor  # (K, D), linear
    support: torch.Tensor  # (S, D), rbf
    dual: torch.Tensor  # (K, S), rbf
    gamma: torch.Tensor  # (), rbf
    intercept: torch.Tensor  # (K,)

    def __init__(self, kernel: Kernel, dim: int, num_classes: int, support: int = 0) -> None:
        super().__init__()
        self.kernel = kernel
        self.num_classes = num_classes
        if kernel == "linear":
            self.register_buffer("weight", torch.zeros(num_classes, dim))
        else:
            # Every SVM's support vectors, stacked; dual[k] is zero outside SVM k's block.
            self.register_buffer("support", torch.zeros(support, dim))
            self.register_buffer("dual", torch.zeros(num_classes, support))
            self.register_buffer("gamma", torch.zeros(()))
        self.register_buffer("intercept", torch.zeros(num_classes))
        self.calibration = nn.Linear(num_classes, num_classes)
        self.calibration.requires_grad_(False)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> SVMHead:
        """An empty head of the shapes of a saved state dict (then ``load_state_dict`` it)."""
        if "weight" in state:
            num_classes, dim = state["weight"].shape
            return cls("linear", dim, num_classes)
        support, dim = state["support"].shape
        return cls("rbf", dim, state["dual"].shape[0], support)

    def decision(self, x: torch.Tensor) -> torch.Tensor:
        """Decision values ``(N, K)``: positive means "class k rather than the rest"."""
        if self.kernel == "linear":
            return x @ self.weight.T + self.intercept
        # (N, D) x (S, D) -> squared distances (N, S) -> RBF kernel -> (N, S) @ (S, K)
        kernel = torch.exp(-self.gamma * torch.cdist(x, self.support).square())
        return kernel @ self.dual.T + self.intercept

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated class log-probabilities ``(N, K)``."""
        return torch.log_softmax(self.calibration(self.decision(x)), dim=1)


@dataclass(frozen=True)
class SVMFit:
    """A fitted head and how it was chosen.

    Attributes:
        head: The calibrated SVMs.
        C: Chosen regularisation.
        gamma: Chosen RBF width (None for the linear kernel).
        selection: ``validation`` or ``cross-validation``.
        grid: Every tried ``(C, gamma, accuracy, hinge loss)``.
    """

    head: SVMHead
    C: float
    gamma: float | None
    selection: str
    grid: list[tuple[float, float | None, float, float]]


def _fit_binary(
    kernel: Kernel, x: np.ndarray, y: np.ndarray, num_classes: int, C: float, gamma: float | None
) -> list[LinearSVC | SVC]:
    """K binary SVMs, class k against the rest."""
    models: list[LinearSVC | SVC] = []
    for k in range(num_classes):
        target = (y == k).astype(int)
        if kernel == "linear":
            model: LinearSVC | SVC = LinearSVC(C=C, max_iter=20_000)
        else:
            model = SVC(C=C, kernel="rbf", gamma=gamma)
        models.append(model.fit(x, target))
    return models


def _decisions(models: list[LinearSVC | SVC], x: np.ndarray) -> np.ndarray:
    """Decision values ``(N, K)`` of the K binary SVMs."""
    return np.stack([model.decision_function(x) for model in models], axis=1)


def _folds(y: np.ndarray, seed: int) -> StratifiedKFold | None:
    """Up to 3 stratified folds, or None when a class has a single video."""
    smallest = int(np.bincount(y).min())
    return (
        StratifiedKFold(min(3, smallest), shuffle=True, random_state=seed) if smallest > 1 else None
    )


def _cv_decisions(
    kernel: Kernel,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    C: float,
    gamma: float | None,
    seed: int,
) -> np.ndarray:
    """Out-of-fold decision values ``(N, K)`` (in-sample when folds are impossible)."""
    folds = _folds(y, seed)
    if folds is None:
        return _decisions(_fit_binary(kernel, x, y, num_classes, C, gamma), x)
    out = np.zeros((len(y), num_classes))
    for train, held in folds.split(x, y):
        out[held] = _decisions(
            _fit_binary(kernel, x[train], y[train], num_classes, C, gamma), x[held]
        )
    return out


def fit_svm(
    kernel: Kernel,
    train_x: np.ndarray,
    train_y: np.ndarray,
    num_classes: int,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    C: list[float] | None = None,
    gamma_scale: list[float] | None = None,
    seed: int = 0,
) -> SVMFit:
    """Grid-search, fit and calibrate K one-vs-rest SVMs.

    Args:
        kernel: ``linear`` (Xu) or ``rbf`` (Kahou).
        train_x: ``(N, D)`` training vectors.
        train_y: ``(N,)`` class indices.
        num_classes: K; every class needs at least one training video.
        val: ``(x, y)`` of the validation split; the grid point with the best accuracy there
            wins, ties going to the smaller hinge loss. Without it, 3-fold cross-validation.
        C: Grid of C (default 0.001 ... 10 for ``linear``, 0.1 ... 1000 for ``rbf``).
        gamma_scale: RBF widths as multiples of scikit-learn's ``"scale"``,
            ``1 / (D * var(x))`` (default 0.1, 1, 10).
        seed: Seed of the cross-validation folds.

    Raises:
        ConfigError: if a class has no training video.
    """
    counts = np.bincount(train_y, minlength=num_classes)
    if counts.min() == 0:
        missing = [int(k) for k in np.flatnonzero(counts == 0)]
        raise ConfigError(f"SVM: classes {missing} have no training video; every class needs one")
    c_grid = C or (
        [0.001, 0.01, 0.1, 1.0, 10.0] if kernel == "linear" else [0.1, 1.0, 10.0, 100.0, 1000.0]
    )
    scale = 1.0 / (train_x.shape[1] * max(float(train_x.var()), 1e-12))
    gammas: list[float | None] = (
        [None] if kernel == "linear" else [scale * m for m in (gamma_scale or [0.1, 1.0, 10.0])]
    )
    grid = []
    for c in c_grid:
        for gamma in gammas:
            if val is not None:
                models = _fit_binary(kernel, train_x, train_y, num_classes, c, gamma)
                decisions, truth = _decisions(models, val[0]), val[1]
            else:
                decisions = _cv_decisions(kernel, train_x, train_y, num_classes, c, gamma, seed)
                truth = train_y
            accuracy = float(np.mean(decisions.argmax(axis=1) == truth))
            grid.append((c, gamma, accuracy, _hinge(decisions, truth)))
    # Best accuracy; among equals the smallest one-vs-rest hinge loss (wider margins), since a
    # tiny C can rank every video right with near-constant decisions that calibrate to uniform.
    best_c, best_gamma, _, _ = max(grid, key=lambda row: (row[2], -row[3]))
    models = _fit_binary(kernel, train_x, train_y, num_classes, best_c, best_gamma)
    head = _export(kernel, models, train_x.shape[1], num_classes, best_gamma)
    held_out = _cv_decisions(kernel, train_x, train_y, num_classes, best_c, best_gamma, seed)
    temperature = _temperature(held_out, train_y)
    weight, bias = np.eye(num_classes) / temperature, np.zeros(num_classes)
    with torch.no_grad():
        head.calibration.weight.copy_(torch.from_numpy(weight).float())
        head.calibration.bias.copy_(torch.from_numpy(bias).float())
    selection = "validation" if val is not None else "cross-validation"
    log.info("SVM (%s): C=%g gamma=%s by %s", kernel, best_c, best_gamma, selection)
    return SVMFit(head.eval(), best_c, best_gamma, selection, grid)


def _temperature(decisions: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the cross-entropy of ``softmax(decisions / T)`` (temperature scaling).

    One shared scale keeps every video's ranking of the classes, hence the SVMs' accuracy; a
    full multinomial regression on the K decisions of a few dozen held-out videos reordered
    them in trials.
    """

    def loss(log_t: float) -> float:
        scores = decisions / np.exp(log_t)
        scores = scores - scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(labels)), labels].mean())

    result = minimize_scalar(loss, bounds=(-7.0, 7.0), method="bounded")
    return float(np.exp(result.x))


def _hinge(decisions: np.ndarray, labels: np.ndarray) -> float:
    """Mean one-vs-rest hinge loss of decisions ``(N, K)``: targets +1 for the class, else -1."""
    targets = -np.ones_like(decisions)
    targets[np.arange(len(labels)), labels] = 1.0
    return float(np.maximum(0.0, 1.0 - targets * decisions).mean())


def _export(
    kernel: Kernel,
    models: list[LinearSVC | SVC],
    dim: int,
    num_classes: int,
    gamma: float | None,
) -> SVMHead:
    """Copy the fitted binary SVMs into a :class:`SVMHead`."""
    if kernel == "linear":
        head = SVMHead("linear", dim, num_classes)
        weight = np.concatenate([model.coef_ for model in models])  # K x (1, D) -> (K, D)
        intercept = np.concatenate([model.intercept_ for model in models])
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight).float())
            head.intercept.copy_(torch.from_numpy(intercept).float())
        return head
    sizes = [len(model.support_vectors_) for model in models]
    head = SVMHead("rbf", dim, num_classes, sum(sizes))
    dual = np.zeros((num_classes, sum(sizes)))
    offsets = np.cumsum([0, *sizes])
    for k, model in enumerate(models):
        dual[k, offsets[k] : offsets[k + 1]] = model.dual_coef_[0]
    with torch.no_grad():
        # K x (S_k, D) -> (S, D)
        head.support.copy_(torch.from_numpy(np.concatenate([m.support_vectors_ for m in models])))
        head.dual.copy_(torch.from_numpy(dual))
        head.gamma.fill_(float(gamma or 0.0))
        head.intercept.copy_(torch.from_numpy(np.concatenate([m.intercept_ for m in models])))
    return head
