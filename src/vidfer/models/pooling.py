"""Temporal pooling: reduce a score map ``(B, K, T')`` to video scores ``(B, K)``.

Every pooling accepts an optional boolean mask ``(B, T')`` so that a padded batch of score maps of
different lengths pools only each video's valid steps. A new pooling is a subclass of
:class:`TemporalPooling` that implements :meth:`TemporalPooling.pool` and
:meth:`TemporalPooling.temporal_weights`, registered with ``@POOLINGS.register("name")``; its
constructor's keyword arguments are the config options.

References are to Ayral's thesis: softmax pooling with a fixed inverse temperature is eq. (3.3),
adaptive softmax pooling with a learned inverse temperature per class is eq. (2.1).
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from vidfer.errors import ConfigError
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
        self._check(scores, mask)
        return self.pool(scores, mask)

    def weights(self, scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Temporal weights ``(B, K, T')`` the pooling gives each step ("clip weights").

        Per video and class the weights are non-negative, sum to 1 over the valid steps and are 0
        on masked steps. For the average and softmax poolings the video score is exactly
        ``(weights * scores).sum(dim=2)``; for max pooling they are one-hot at the (first) argmax.

        Args:
            scores: Score map ``(B, K, T')``.
            mask: Optional boolean ``(B, T')``, True on valid steps. Every row needs one.

        Raises:
            ValueError: as :meth:`forward`.
        """
        self._check(scores, mask)
        return self.temporal_weights(scores, mask)

    @staticmethod
    def _check(scores: torch.Tensor, mask: torch.Tensor | None) -> None:
        """Raise ValueError unless ``scores`` is ``(B, K, T')`` and ``mask`` a valid ``(B, T')``."""
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

    @abc.abstractmethod
    def pool(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Pool validated ``scores`` ``(B, K, T')`` with an optional mask ``(B, T')``."""

    @abc.abstractmethod
    def temporal_weights(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Weights ``(B, K, T')`` of validated ``scores`` with an optional mask ``(B, T')``."""


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

    def temporal_weights(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Uniform weights ``1 / T_valid`` on the valid steps, ``(B, K, T')``."""
        if mask is None:
            return torch.full_like(scores, 1.0 / scores.shape[2])
        valid = mask.unsqueeze(1).to(scores.dtype)  # (B, T') -> (B, 1, T')
        uniform = valid / valid.sum(dim=2, keepdim=True)  # (B, 1, T') / (B, 1, 1)
        return uniform.expand_as(scores)  # (B, K, T')


@POOLINGS.register("max")
class TemporalMaxPool(TemporalPooling):
    """Maximum of the scores over the valid time steps, per class."""

    def pool(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Max over time of ``scores`` ``(B, K, T')``."""
        return _mask_scores(scores, mask, float("-inf")).amax(dim=2)

    def temporal_weights(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """One-hot weights ``(B, K, T')`` at the first argmax over the valid steps."""
        best = _mask_scores(scores, mask, float("-inf")).argmax(dim=2, keepdim=True)  # (B, K, 1)
        return torch.zeros_like(scores).scatter_(2, best, 1.0)  # (B, K, T')


class _SoftmaxPooling(TemporalPooling):
    """Weighted mean of the scores with weights ``softmax_t(inverse_temperature * scores)``.

    The common form of eqs. (2.1) and (3.3): an inverse temperature of 0 gives average pooling and
    a large one approaches max pooling. Masked steps get logit ``-inf``, hence weight exactly 0 and
    no gradient; ``torch.softmax`` subtracts the maximum logit, so large temperatures do not
    overflow.
    """

    @abc.abstractmethod
    def inverse_temperature(self) -> torch.Tensor | float:
        """Inverse temperature, a number or a tensor broadcastable to a score map ``(B, K, T')``."""

    def pool(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Softmax-weighted mean over time of ``scores`` ``(B, K, T')``."""
        weights = self.temporal_weights(scores, mask)  # (B, K, T')
        # Zeroing the padded scores keeps a non-finite padding value from turning 0 * x into NaN.
        return (weights * _mask_scores(scores, mask, 0.0)).sum(dim=2)  # (B, K)

    def temporal_weights(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Softmax weights over time ``(B, K, T')``."""
        logits = self.inverse_temperature() * _mask_scores(scores, mask, 0.0)  # (B, K, T')
        return torch.softmax(_mask_scores(logits, mask, float("-inf")), dim=2)


@POOLINGS.register("softmax")
class TemporalSoftmaxPool(_SoftmaxPooling):
    """Softmax pooling with a fixed inverse temperature, thesis eq. (3.3).

    For class ``k`` with scores ``s_k(t)`` over the valid steps:
    ``w_k(t) = exp(gamma * s_k(t)) / sum_j exp(gamma * s_k(j))`` and the video score is
    ``sum_t w_k(t) * s_k(t)``. ``gamma = 0`` is average pooling, ``gamma -> inf`` max pooling,
    and the score is non-decreasing in ``gamma``.

    Args:
        gamma: Inverse temperature, finite and ``>= 0``.

    Raises:
        ConfigError: if ``gamma`` is negative or not finite.
    """

    def __init__(self, gamma: float = 1.0) -> None:
        super().__init__()
        if not math.isfinite(gamma) or gamma < 0:
            raise ConfigError(f"softmax pooling: gamma={gamma} must be a finite number >= 0")
        self.gamma = float(gamma)

    def inverse_temperature(self) -> float:
        """The fixed ``gamma``."""
        return self.gamma

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


@POOLINGS.register("adaptive_softmax")
class TemporalAdaptiveSoftmaxPool(_SoftmaxPooling):
    """Adaptive softmax pooling with a learned inverse temperature per class, thesis eq. (2.1).

    ``y_c = sum_t exp(beta_c * x_{t,c}) / sum_j exp(beta_c * x_{j,c}) * x_{t,c}`` for class ``c``
    with temporal scores ``x_{t,c}`` (after McFee et al., 2018). ``beta`` is an unconstrained
    :class:`~torch.nn.Parameter` of shape ``(K,)``: 0 is average pooling, large values approach max
    pooling and negative values favour low scores. The thesis initialises every ``beta_c`` to 1.

    Args:
        num_classes: Classes ``K``; the score maps pooled must have ``K`` channels.
        beta_init: Initial value of every ``beta_c`` (finite).

    Raises:
        ConfigError: if ``num_classes < 1`` or ``beta_init`` is not finite.
    """

    def __init__(self, num_classes: int, beta_init: float = 1.0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"adaptive_softmax pooling: num_classes={num_classes} must be >= 1")
        if not math.isfinite(beta_init):
            raise ConfigError(f"adaptive_softmax pooling: beta_init={beta_init} must be finite")
        self.beta = nn.Parameter(torch.full((num_classes,), float(beta_init)))  # (K,)

    def inverse_temperature(self) -> torch.Tensor:
        """``beta`` reshaped ``(K,) -> (1, K, 1)`` to broadcast over videos and steps."""
        return self.beta.view(1, -1, 1)

    def temporal_weights(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Softmax weights ``(B, K, T')``; ``K`` must equal ``num_classes``.

        Raises:
            ValueError: if the score map has a different number of classes.
        """
        if scores.shape[1] != self.beta.shape[0]:
            raise ValueError(
                f"adaptive_softmax pooling has {self.beta.shape[0]} classes (num_classes), "
                f"got a score map with {scores.shape[1]}"
            )
        return super().temporal_weights(scores, mask)


def _mask_scores(scores: torch.Tensor, mask: torch.Tensor | None, value: float) -> torch.Tensor:
    """``scores`` ``(B, K, T')`` with the masked steps of ``mask`` ``(B, T')`` set to ``value``."""
    if mask is None:
        return scores
    return scores.masked_fill(~mask.unsqueeze(1), value)  # (B, T') -> (B, 1, T') broadcast
