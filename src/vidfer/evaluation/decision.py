"""Decision-level fusion: averaging, max, and the sparsity concentration index (SCI).

The SCI fusion is Sun et al.'s (FstCN, §2.4): a score vector ``p`` over ``N`` classes is
reliable when it is sparse, measured by

    SCI(p) = (N * max_j p_j / sum_j p_j - 1) / (N - 1)            (eq. 5; 0 uniform, 1 one-hot)

and ``C`` views of one clip are fused by the SCI-weighted average (eq. 6); clips are then fused by
the element-wise max (eq. 7). The functions work on any leading batch dimensions, for every model
that produces several views or clips of a video, and for fusing models.
"""

from __future__ import annotations

import torch


def sci(scores: torch.Tensor) -> torch.Tensor:
    """Sparsity concentration index of score vectors ``(..., N)`` -> ``(...,)`` in [0, 1].

    Scores must be non-negative (e.g. probabilities); a single class has SCI 1.

    Raises:
        ValueError: on negative scores or an all-zero vector.
    """
    if bool((scores < 0).any()):
        raise ValueError("SCI needs non-negative scores (probabilities), got a negative value")
    total = scores.sum(dim=-1)
    if bool((total <= 0).any()):
        raise ValueError("SCI of an all-zero score vector is undefined")
    classes = scores.shape[-1]
    if classes == 1:
        return torch.ones_like(total)
    return (classes * scores.amax(dim=-1) / total - 1) / (classes - 1)


def sci_fusion(scores: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Eq. (6): the SCI-weighted average of the score vectors along ``dim``.

    Args:
        scores: Non-negative scores ``(..., C, ..., N)``; ``dim`` indexes the ``C`` views.
        dim: The dimension to fuse (not the last one, which holds the classes).

    Returns:
        The fused scores, ``dim`` removed. When every view has SCI 0 (all uniform), the plain
        average.
    """
    if dim in (-1, scores.ndim - 1):
        raise ValueError("sci_fusion fuses views, not classes: dim must not be the last one")
    weights = sci(scores).unsqueeze(-1)  # (..., C, ..., 1)
    total = weights.sum(dim=dim, keepdim=True)
    uniform = torch.full_like(weights, 1.0 / scores.shape[dim])
    weights = torch.where(total > 0, weights / total.clamp(min=1e-12), uniform)
    return (weights * scores).sum(dim=dim)


def mean_fusion(scores: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Simple averaging along ``dim``."""
    return scores.mean(dim=dim)


def max_fusion(scores: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Eq. (7): the element-wise (per class) maximum along ``dim``."""
    return scores.amax(dim=dim)


FUSIONS = {"sci": sci_fusion, "mean": mean_fusion, "max": max_fusion}
