"""Video-level temporal self-attention over stored clip features (Ayral's thesis, §4.5.5).

The second step of two-step training: a frozen 3D model has turned every video into a sequence
of per-step features ``(T', C)``; this classifier relates all steps of a video (hundreds of
frames, far beyond a training clip) with multi-head self-attention, classifies every step and
averages the valid steps' scores.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models.attention import sinusoidal


class VideoAttentionClassifier(nn.Module):
    """Temporal self-attention (residual, pre-norm) then a per-step classifier, mean-pooled.

    Args:
        channels: Feature channels ``C``.
        num_classes: Classes ``K``.
        heads: Attention heads.
        d_att: Channels per head for queries, keys and values.
        dropout: Dropout before the classifier.
        positional: Add a sinusoidal encoding of the step index to the queries' and keys' input.

    Attributes:
        record: Keep the last head-averaged attention matrices ``(B, N, N)`` in ``weights``.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        *,
        heads: int = 4,
        d_att: int = 64,
        dropout: float = 0.5,
        positional: bool = False,
    ) -> None:
        super().__init__()
        if heads < 1 or d_att < 1 or not 0 <= dropout < 1 or num_classes < 1:
            raise ConfigError("video attention: heads, d_att >= 1, 0 <= dropout < 1 required")
        self.heads, self.d_att, self.positional = heads, d_att, positional
        self.norm = nn.LayerNorm(channels)
        self.query = nn.Linear(channels, heads * d_att)
        self.key = nn.Linear(channels, heads * d_att)
        self.value = nn.Linear(channels, heads * d_att)
        self.output = nn.Linear(heads * d_att, channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        self.record = False
        self.weights = torch.empty(0)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, h * d)`` -> ``(B, h, N, d)``."""
        return x.unflatten(2, (self.heads, self.d_att)).transpose(1, 2)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Video logits ``(B, K)``.

        Args:
            features: Padded feature sequences ``(B, N, C)``.
            mask: Boolean ``(B, N)``, True on each video's valid steps.
        """
        normed = self.norm(features)
        keyed = normed
        if self.positional:
            steps = torch.arange(features.shape[1], device=features.device, dtype=features.dtype)
            keyed = normed + sinusoidal(steps[:, None], features.shape[2])
        q, k = self._split(self.query(keyed)), self._split(self.key(keyed))  # (B, h, N, d)
        v = self._split(self.value(normed))  # (B, h, N, d)
        allowed = mask[:, None, None, :]  # (B, 1, 1, N): padded steps are never attended to
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, h, N, d)
        if self.record:
            logits = (q @ k.transpose(2, 3)) / math.sqrt(self.d_att)  # (B, h, N, N)
            logits = logits.masked_fill(~allowed, float("-inf"))
            self.weights = torch.softmax(logits, dim=-1).mean(dim=1).detach()  # (B, N, N)
        hidden = features + self.output(attended.transpose(1, 2).flatten(2))  # (B, N, C)
        steps = self.classifier(self.dropout(hidden))  # (B, N, K)
        valid = mask.unsqueeze(2).to(steps.dtype)  # (B, N, 1)
        return (steps * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)  # (B, K)


def attention_profile(weights: torch.Tensor, length: int) -> torch.Tensor:
    """A video's temporal attention profile: the attention each step receives, averaged over
    the valid queries (the thesis's 1D profile), from one matrix ``(N, N)``; sums to 1."""
    return weights[:length, :length].mean(dim=0)
