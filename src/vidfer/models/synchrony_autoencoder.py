"""A synchrony auto-encoder: local motion features learned without labels.

Kahou et al. (2015, §4) describe each ``16 x 16 x 10`` video block by a synchrony auto-encoder
(Konda, Memisevic and Michalski, 2014). Motion is a transformation of the frames through time;
a unit detects it when a sequence of filters, one per frame, responds *in synchrony* to the
block. Here, after Konda et al.'s formulation (their paper is not among the project's sources;
the nonlinearity, the corruption and the bias are our choices):

- the frames ``x_t`` of a block are PCA-whitened (one projection shared by all frames);
- factors ``f_kt = <w_kt, x~_t>`` of the corrupted frames ``x~`` (masking noise);
- hidden units ``h_k = sigmoid((sum_t f_kt)^2 + b_k)``: the square of the summed responses
  holds the products ``f_ks f_kt`` across frames, large only when the filters fire together;
- the reconstruction of every frame from its own factors gated by the hidden units,
  ``x^_t = sum_k h_k f_kt w_kt + c_t``, and the squared error to the clean frames.

The features of a block are its synchrony amplitudes ``|sum_t f_kt|`` on the clean input: the
hidden units before the logistic, whose output saturates at 1 on most moving blocks (measured on
the synthetic actions: a bag of words of the amplitudes separates the classes, one of the
saturated units does not; see benchmarks/README.md).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class SynchronyAutoEncoder(nn.Module):
    """Whitening, ``hidden`` synchrony units over ``frames`` frames of ``dim`` values.

    Args:
        dim: Values per frame of a block (C M M).
        frames: Frames per block T.
        hidden: Hidden units K.
        components: Whitened values kept per frame (principal components).
        corruption: Share of the whitened inputs zeroed while training.
        seed: Seed of the initial filters.
    """

    mean: torch.Tensor  # (dim,)
    projection: torch.Tensor  # (dim, components)

    def __init__(
        self,
        dim: int,
        frames: int,
        hidden: int,
        components: int,
        corruption: float = 0.3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.corruption = corruption
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("projection", torch.zeros(dim, components))
        self.filters = nn.Parameter(
            0.01 * torch.randn(hidden, frames, components, generator=generator)
        )  # (K, T, P)
        self.bias = nn.Parameter(torch.full((hidden,), -1.0))
        self.output_bias = nn.Parameter(torch.zeros(frames, components))

    def fit_whitening(self, frames: np.ndarray) -> None:
        """PCA-whitening of frames ``(N, dim)``: keep the leading components, unit variance."""
        mean = frames.mean(axis=0)
        _, singular, axes = np.linalg.svd(frames - mean, full_matrices=False)
        keep = self.projection.shape[1]
        scale = singular[:keep] / np.sqrt(max(len(frames) - 1, 1))  # component std
        self.mean.copy_(torch.from_numpy(mean))
        # (dim, P): project on the axes, then unit variance per component.
        self.projection.copy_(torch.from_numpy(axes[:keep].T / np.maximum(scale, 1e-6)))

    def whiten(self, blocks: torch.Tensor) -> torch.Tensor:
        """Blocks ``(B, T, dim)`` -> whitened ``(B, T, P)``."""
        return (blocks - self.mean) @ self.projection

    def _hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        factors = torch.einsum("ktp,btp->bkt", self.filters, x)  # (B, K, T)
        return torch.sigmoid(factors.sum(dim=2) ** 2 + self.bias), factors  # (B, K), (B, K, T)

    def reconstruction_loss(self, blocks: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the reconstruction of corrupted blocks ``(B, T, dim)``."""
        clean = self.whiten(blocks)  # (B, T, P)
        keep = torch.rand_like(clean) >= self.corruption
        hidden, factors = self._hidden(clean * keep)
        gated = hidden.unsqueeze(2) * factors  # (B, K, T)
        rebuilt = torch.einsum("bkt,ktp->btp", gated, self.filters) + self.output_bias
        return ((rebuilt - clean) ** 2).sum(dim=(1, 2)).mean()

    @torch.no_grad()
    def features(self, blocks: torch.Tensor) -> torch.Tensor:
        """Synchrony amplitudes ``(B, K)`` of clean blocks ``(B, T, dim)``."""
        factors = torch.einsum("ktp,btp->bkt", self.filters, self.whiten(blocks))  # (B, K, T)
        return factors.sum(dim=2).abs()


def train_synchrony_autoencoder(
    model: SynchronyAutoEncoder,
    blocks: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> list[float]:
    """Whiten on ``blocks`` ``(N, T, dim)``, then minibatch Adam on the reconstruction error.

    Returns:
        The mean training loss of every epoch.
    """
    model.fit_whitening(blocks.reshape(-1, blocks.shape[2]))
    data = torch.from_numpy(np.ascontiguousarray(blocks, dtype=np.float32))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        total = 0.0
        for start in range(0, len(data), batch_size):
            batch = data[order[start : start + batch_size]]
            loss = model.reconstruction_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(data))
    return losses
