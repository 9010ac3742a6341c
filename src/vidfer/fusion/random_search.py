"""Per-model, per-class fusion weights by random search (Kahou et al. 2015, §5.2).

The fused score of class k is ``sum_m w[m, k] p_m[k]``, the weights of each class summing to 1
over the M models. The search, on a split the models were not trained on:

1. uniform: ``samples`` weight sets drawn from U[0, 1], each class re-scaled to sum 1;
2. local: Gaussian steps of standard deviation sigma (0.5 at first) around the best set so far
   (negative draws clipped to 0, then re-scaled), sigma multiplied by ``decay`` (0.9) after every
   ``block`` samples (100,000), until it falls below ``min_sigma`` (1e-4).

The criterion is accuracy, and a set replaces the best only if strictly better. Candidates are
scored ``chunk`` at a time with one matrix product per class, and the best set is updated after
each chunk (the paper updates after each sample; with chunks of 4,096 the difference is only
when within a chunk an improvement would have moved later draws). The equal-weight set and each
model alone are scored first, so the result is never below the best single model. Seeded: the
same inputs and seed give the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SearchSettings:
    """Iteration counts of the search (Kahou: 100,000 uniform, blocks of 100,000).

    Attributes:
        samples: Uniform draws.
        block: Local draws per sigma.
        sigma: First sigma of the local search.
        decay: Sigma factor after each block.
        min_sigma: The local search stops below this sigma.
        chunk: Candidates scored per matrix product.
        seed: Seed of every draw.
    """

    samples: int = 100_000
    block: int = 100_000
    sigma: float = 0.5
    decay: float = 0.9
    min_sigma: float = 1e-4
    chunk: int = 4096
    seed: int = 0


@dataclass
class SearchResult:
    """The best weights and how the search went.

    Attributes:
        weights: ``(M, K)`` weights; each column sums to 1.
        accuracy: Accuracy of the fused scores on the search split.
        evaluations: Weight sets scored.
        history: ``(evaluations, accuracy, sigma)`` at each improvement (sigma 0: uniform phase).
    """

    weights: np.ndarray
    accuracy: float
    evaluations: int = 0
    history: list[tuple[int, float, float]] = field(default_factory=list)


def fuse(weights: np.ndarray, scores: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Weighted scores ``(N, K)`` of per-model scores ``(M, N, K)`` and weights ``(M, K)``.

    With ``present`` ``(M, N)`` (False: the model has no prediction for the video, its scores
    are 0), each video's weights are re-normalised over the models present.
    """
    fused = np.einsum("mk,mnk->nk", weights, scores)
    if present is None:
        return fused
    total = present.T.astype(weights.dtype) @ weights  # (N, M) @ (M, K) -> (N, K)
    return fused / np.maximum(total, 1e-12)


def _rescale(weights: np.ndarray) -> np.ndarray:
    """``(B, M, K)`` weights with each class summing to 1 over the models (all-zero: equal)."""
    total = weights.sum(axis=1, keepdims=True)
    equal = np.full_like(weights, 1.0 / weights.shape[1])
    return np.where(total > 0, weights / np.maximum(total, 1e-12), equal)


def _accuracies(
    weights: np.ndarray, scores: np.ndarray, labels: np.ndarray, present: np.ndarray | None
) -> np.ndarray:
    """Accuracy ``(B,)`` of each weight set ``(B, M, K)`` on scores ``(M, N, K)``."""
    batch, _, classes = weights.shape
    fused = np.empty((batch, scores.shape[1], classes), dtype=np.float32)
    for k in range(classes):
        fused[:, :, k] = weights[:, :, k] @ scores[:, :, k]  # (B, M) @ (M, N) -> (B, N)
        if present is not None:  # re-normalised over the models present for each video
            fused[:, :, k] /= np.maximum(weights[:, :, k] @ present, 1e-12)
    return (fused.argmax(axis=2) == labels).mean(axis=1)


def random_search(
    scores: np.ndarray,
    labels: np.ndarray,
    settings: SearchSettings | None = None,
    present: np.ndarray | None = None,
) -> SearchResult:
    """Kahou's random search for per-model, per-class weights.

    Args:
        scores: ``(M, N, K)`` class probabilities of M models on the N videos of the search split.
        labels: ``(N,)`` true classes.
        settings: Iteration counts and seed (default: the paper's).
        present: ``(M, N)`` False where a model has no prediction (a missing modality); None:
            every model scores every video.

    Returns:
        The best weights found.
    """
    settings = settings or SearchSettings()
    rng = np.random.default_rng(settings.seed)
    models, _, classes = scores.shape
    scores = scores.astype(np.float32)
    mask = None if present is None or present.all() else present.astype(np.float32)
    # Equal weights, then each model alone: (1 + M, M, K)
    start = np.concatenate(
        [np.full((1, models, classes), 1.0 / models), np.eye(models)[:, :, None].repeat(classes, 2)]
    )
    accuracy = _accuracies(start.astype(np.float32), scores, labels, mask)
    best = SearchResult(start[int(accuracy.argmax())], float(accuracy.max()), len(start))

    def consider(candidates: np.ndarray, sigma: float) -> None:
        accuracy = _accuracies(candidates.astype(np.float32), scores, labels, mask)
        best.evaluations += len(candidates)
        top = int(accuracy.argmax())
        if accuracy[top] > best.accuracy:
            best.weights, best.accuracy = candidates[top], float(accuracy[top])
            best.history.append((best.evaluations, best.accuracy, sigma))

    for first in range(0, settings.samples, settings.chunk):
        size = min(settings.chunk, settings.samples - first)
        consider(_rescale(rng.uniform(0.0, 1.0, (size, models, classes))), 0.0)
    sigma = settings.sigma
    while sigma >= settings.min_sigma:
        for first in range(0, settings.block, settings.chunk):
            size = min(settings.chunk, settings.block - first)
            steps = rng.normal(0.0, sigma, (size, models, classes))
            consider(_rescale(np.clip(best.weights + steps, 0.0, None)), sigma)
        sigma *= settings.decay
    return best
