"""Classifier heads that turn backbone features into a temporal score map.

A head keeps the time axis: it pools space only and classifies every time step with a 1x1x1
convolution, so a model scores a video of any length (Ayral's thesis, section 2.1.2). Temporal
pooling of the scores is a separate step (:mod:`vidfer.models.pooling`).
"""

from __future__ import annotations

import torch
from torch import nn

from vidfer.errors import ConfigError

SPATIAL_POOLS = ("avg", "max")


class ConvHead(nn.Module):
    """Spatial pooling, dropout and a 1x1x1 convolutional classifier.

    With ``spatial_pool="max"`` and average temporal pooling of the scores afterwards this is the
    thesis's "2-step pooling"; with ``"avg"`` and average temporal pooling it equals global
    average pooling at score level (the classifier is linear).

    Args:
        in_features: Channels ``F`` of the backbone features.
        num_classes: Classes ``K``.
        spatial_pool: ``"avg"`` or ``"max"`` over the spatial positions ``(H', W')``.
        dropout: Dropout probability applied to the pooled features in training.

    Raises:
        ConfigError: if ``spatial_pool`` is unknown or ``dropout`` is not in ``[0, 1)``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        spatial_pool: str = "avg",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_pool not in SPATIAL_POOLS:
            known = ", ".join(SPATIAL_POOLS)
            raise ConfigError(f"spatial_pool={spatial_pool!r} is not supported; use one of {known}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout} must be in [0, 1)")
        # Output size None keeps the time axis while reducing (H', W') to (1, 1).
        self.pool: nn.Module = (
            nn.AdaptiveAvgPool3d((None, 1, 1))
            if spatial_pool == "avg"
            else nn.AdaptiveMaxPool3d((None, 1, 1))
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv3d(in_features, num_classes, kernel_size=1)
        # Small initial scores, as torchvision initialises its video classifiers, so that a fresh
        # head does not swamp the pretrained features with large random gradients.
        nn.init.normal_(self.classifier.weight, mean=0.0, std=0.01)
        assert self.classifier.bias is not None  # Conv3d has a bias by default
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Score map ``(B, K, T')`` of features ``(B, F, T', H', W')``."""
        pooled = self.pool(features)  # (B, F, T', 1, 1)
        scores = self.classifier(self.dropout(pooled))  # (B, K, T', 1, 1)
        return scores.flatten(2)  # (B, K, T')
