"""Classifier heads that turn backbone features into a temporal score map.

By default a head keeps the time axis: it pools space only and classifies every time step with a
1x1x1 convolution, so a model scores a video of any length (Ayral's thesis, section 2.1.2). Temporal
pooling of the scores is a separate step (:mod:`vidfer.models.pooling`). At feature level the head
averages the features over time too and returns a length-1 score map. A run config chooses the
level of every :class:`ConvHead` of its model with ``model.pooling_level``
(:func:`set_pooling_level`); whole-video scoring reads every step's score at either level
(:func:`every_step`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from vidfer.errors import ConfigError

SPATIAL_POOLS = ("avg", "max")
LEVELS = ("score", "feature")


class ConvHead(nn.Module):
    """Spatial pooling, optional temporal pooling of features, dropout and a 1x1x1 classifier.

    ``level`` chooses where time is pooled (thesis sections 2.1.2 and 2.3.1, Table 2.1):

    - ``"score"`` (default): the time axis is kept and every step is classified, giving a score
      map ``(B, K, T')``; the temporal pooling module (:mod:`vidfer.models.pooling`) pools the
      scores afterwards.
    - ``"feature"``: the spatially pooled features are averaged over time before the classifier,
      giving a score map ``(B, K, 1)``. Every temporal pooling of a length-1 map is the identity,
      so feature-level pooling is a config choice that needs no other change.

    The thesis's pooling strategies map onto the options as follows:

    - 3D global average pooling at feature level: ``spatial_pool="avg"``, ``level="feature"``.
    - 3D global average pooling at score level: ``spatial_pool="avg"``, ``level="score"`` and
      ``"avg"`` temporal pooling. The classifier is linear, so both give the same scores.
    - "2-step pooling" (spatial max on the features, temporal average of the scores):
      ``spatial_pool="max"``, ``level="score"`` and ``"avg"`` temporal pooling.

    Args:
        in_features: Channels ``F`` of the backbone features.
        num_classes: Classes ``K``.
        spatial_pool: ``"avg"`` or ``"max"`` over the spatial positions ``(H', W')``.
        dropout: Dropout probability applied to the pooled features in training.
        level: ``"score"`` or ``"feature"``: pool time after or before the classifier.

    Raises:
        ConfigError: if ``spatial_pool`` or ``level`` is unknown or ``dropout`` is not in
            ``[0, 1)``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        spatial_pool: str = "avg",
        dropout: float = 0.0,
        level: str = "score",
    ) -> None:
        super().__init__()
        if spatial_pool not in SPATIAL_POOLS:
            known = ", ".join(SPATIAL_POOLS)
            raise ConfigError(f"spatial_pool={spatial_pool!r} is not supported; use one of {known}")
        if level not in LEVELS:
            known = ", ".join(LEVELS)
            raise ConfigError(f"level={level!r} is not supported; use one of {known}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout} must be in [0, 1)")
        # Output size None keeps the time axis while reducing (H', W') to (1, 1).
        self.pool: nn.Module = (
            nn.AdaptiveAvgPool3d((None, 1, 1))
            if spatial_pool == "avg"
            else nn.AdaptiveMaxPool3d((None, 1, 1))
        )
        self.level = level
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv3d(in_features, num_classes, kernel_size=1)
        # Small initial scores, as torchvision initialises its video classifiers, so that a fresh
        # head does not swamp the pretrained features with large random gradients.
        nn.init.normal_(self.classifier.weight, mean=0.0, std=0.01)
        assert self.classifier.bias is not None  # Conv3d has a bias by default
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Score map of features ``(B, F, T', H', W')``.

        Returns:
            ``(B, K, T')`` at score level, ``(B, K, 1)`` at feature level.
        """
        pooled = self.pool(features)  # (B, F, T', 1, 1)
        if self.level == "feature":
            pooled = pooled.mean(dim=2, keepdim=True)  # (B, F, T', 1, 1) -> (B, F, 1, 1, 1)
        scores = self.classifier(self.dropout(pooled))  # (B, K, T', 1, 1)
        return scores.flatten(2)  # (B, K, T', 1, 1) -> (B, K, T'), T' = 1 at feature level


def set_pooling_level(model: nn.Module, level: str, *, name: str) -> None:
    """Pool time at ``level`` in every :class:`ConvHead` of ``model`` (``model.pooling_level``).

    Args:
        model: The video model (with its attention module, if any).
        level: ``"score"`` or ``"feature"``.
        name: The model's registered name, for messages.

    Raises:
        ConfigError: if ``level`` is unknown, or is ``"feature"`` and the model has no
            :class:`ConvHead` (FstCN classifies a clip pair with fully connected layers).
    """
    if level not in LEVELS:
        known = ", ".join(LEVELS)
        raise ConfigError(f"model.pooling_level {level!r} is not supported; use one of {known}")
    heads = [module for module in model.modules() if isinstance(module, ConvHead)]
    if level == "feature" and not heads:
        raise ConfigError(
            f"model.pooling_level 'feature' needs a model with vidfer's 1x1x1 head; {name!r} "
            f"scores one clip with fully connected layers; set model.pooling_level: score"
        )
    for head in heads:
        head.level = level


@contextmanager
def every_step(model: nn.Module) -> Iterator[None]:
    """Inside, every :class:`ConvHead` of ``model`` classifies every time step (score level).

    At feature level a head's scores on ``n`` steps are the classifier of their averaged
    features; in eval mode (dropout off) that equals the average of the per-step scores, since
    the 1x1x1 classifier is linear. Whole-video scoring therefore reads the per-step score map
    at both levels, and a feature-level model's video score is its average (``pooling.name:
    avg``): chunks of a long video are stitched exactly, and every step keeps a frame position.
    """
    heads = [(module, module.level) for module in model.modules() if isinstance(module, ConvHead)]
    for head, _ in heads:
        head.level = "score"
    try:
        yield
    finally:
        for head, level in heads:
            head.level = level
