"""Temporal pooling: reduce a score map ``(B, K, T')`` to video scores ``(B, K)``.

Every pooling accepts an optional boolean mask ``(B, T')`` so that a padded batch of score maps of
different lengths pools only each video's valid steps. A new pooling is a subclass of
:class:`TemporalPooling` that implements :meth:`TemporalPooling.pool`, registered with
``@POOLINGS.register("name")``; its constructor's keyword arguments are the config options.
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from vidfer.registry import POOLINGS


def mask_from_lengths(lengths: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Boolean mask ``(B, num_steps)`` that is True on the first ``lengths[b]`` steps of row ``b``.

    Args:
        lengths: Valid steps per video, integer tensor ``(B,)``.
        num_steps: Length ``T'`` of the padded score maps.
    """
    steps = torch.arange(num_steps, device=lengths.device)  # (T',)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)  # (1, T') < (B, 1) -> (B, T')


class TemporalPooling(nn.Module, abc.ABC):
    """Base class of temporal poolings; validates the inputs once for every subclass."""

    def __init__(self) -> None:
        # Explicit, so that the signature of an option-less pooling rejects unknown options
        # (nn.Module's own ``__init__`` takes ``*args, **kwargs``).
        super().__init__()

    def forward(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Video scores ``(B, K)`` of a score map ``(B, K, T')``.

        Args:
            scores: Score map ``(B, K, T')``.
            mask: Optional boolean ``(B, T')``, True on valid steps. Every row needs one.

        Raises:
            ValueError: if the shapes disagree, the mask is not boolean or a row has no valid step.
        """
        if scores.ndim != 3:
            raise ValueError(f"expected a score map (B, K, T'), got shape {tuple(scores.shape)}")
        if mask is not None:
            expected = (scores.shape[0], scores.shape[2])
            if mask.dtype != torch.bool or tuple(mask.shape) != expected:
                raise ValueError(
                    f"mask must be bool with shape {expected}, got {mask.dtype} {tuple(mask.shape)}"
                )
            if not bool(mask.any(dim=1).all()):
                raise ValueError("every video needs at least one valid step in the mask")
        return self.pool(scores, mask)

    @abc.abstractmethod
    def pool(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Pool validated ``scores`` ``(B, K, T')`` with an optional mask ``(B, T')``."""


@POOLINGS.register("avg")
class TemporalAvgPool(TemporalPooling):
    """Mean of the scores over the valid time steps."""

    def pool(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Mean over time of ``scores`` ``(B, K, T')``."""
        if mask is None:
            return scores.mean(dim=2)
        weights = mask.unsqueeze(1).to(scores.dtype)  # (B, T') -> (B, 1, T')
        total = (scores * weights).sum(dim=2)  # (B, K)
        return total / weights.sum(dim=2)  # (B, K) / (B, 1)


@POOLINGS.register("max")
class TemporalMaxPool(TemporalPooling):
    """Maximum of the scores over the valid time steps, per class."""

    def pool(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Max over time of ``scores`` ``(B, K, T')``."""
        if mask is not None:
            # -inf never wins the max, and every row has a valid step, so no -inf survives.
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))  # (B, K, T')
        return scores.amax(dim=2)
