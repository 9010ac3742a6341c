"""Baccouche et al. (2012): the spatio-temporal convolutional sparse auto-encoder.

The model (§2-3) codes an ``M x M x T`` patch ``x`` of C channels (gray in the paper: C = 1),
flattened to ``D = C T M M`` values:

* the **encoder**: N linear 3D kernels of the patch's size plus a bias, ``Z = W_E x + b_E``;
* the **sparsifying logistic** of eq. 1, a softmax of each code unit over consecutive training
  samples: ``zbar_i = eta e^(beta z_i) / xi_i`` with ``xi_i = eta e^(beta z_i) + (1 - eta)
  xi_(i-1)``, i.e. ``zbar_i = sigmoid(beta z_i + log(eta / (1 - eta)) - log xi_(i-1))``;
  after training ``xi`` is frozen at its mean over training samples (a fixed-gain logistic);
* the **decoder**: ``D`` outputs fully connected to the sparse code plus one bias,
  ``Dec(zbar) = W_D zbar + b_D`` (the paper counts ``N D + 1`` parameters: one scalar bias).

Training minimises the energy of eq. 2, ``E = ||Z - Enc(phi(x, t))||^2 + ||Dec(zbar) -
phi(x, t)||^2``, online, patch by patch, in three steps (§2.2): (1) the exhaustive search of the
shift ``t*`` in ``[-M/4, M/4]^2 x [-T/2, T/2]`` (after the first epoch), (2) steepest descent on
``Z`` with the finite-difference gradient of eq. 6, (3) one gradient step of ``W_E`` towards the
optimal code ``Z*`` and of ``W_D`` towards the shifted patch. All shifts, and all ``2N``
perturbed codes of the finite difference, are evaluated as one batched tensor operation.

Choices where the paper is silent (or does not work as printed):

* patches are standardised by the mean and standard deviation of all training patch values (two
  scalars kept with the model), so that the gain beta = 1.5 meets codes of a usable spread
  whatever the pixel range;
* during the shift search each shifted patch is coded by the encoder (``Z_t = Enc(phi_t)``, so
  ``E`` reduces to the reconstruction error);
* ``xi`` starts at 1 (``e^(beta z)`` of a zero code); its fixed value after training is its
  geometric mean (the mean of ``log xi``) over the samples of the last epoch: the arithmetic
  mean is ruled by the rare largest values and left almost no unit ever active;
* the decoder's single bias moves by the mean output error (see :meth:`SparseAutoEncoder.learn`);
* a code unit is *active* when its sparse value exceeds 0.5 (the logistic's midpoint);
* eq. 6 divides the central difference by ``2 dZ``: as printed (``dZ``) it is twice the
  derivative, which only rescales the descent step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from vidfer.config import AutoEncoderConfig
from vidfer.progress import track

CodeKind = Literal["sparse", "linear"]

ACTIVE_LEVEL = 0.5
"""A code unit is active on a patch when its sparse value exceeds this."""

LOGIT_FLOOR = -60.0
"""Smallest argument of the logistic (a sparse value of about 1e-26, still a normal float)."""


def margins(patch: int, depth: int) -> tuple[int, int]:
    """Largest spatial and temporal shifts searched: ``(M // 4, T // 2)``."""
    return patch // 4, depth // 2


class SparsifyingLogistic(nn.Module):
    """Eq. 1, kept in log space (``e^(beta z)`` overflows float32 for large codes).

    Args:
        codes: N.
        eta: Weight of the current sample in the running normaliser ``xi`` (paper: 0.02).
        beta: Gain (paper: 1.5).
    """

    log_xi: torch.Tensor  # (N,) log xi of the previous training sample
    log_xi_mean: torch.Tensor  # (N,) mean log xi over training samples (after training)

    def __init__(self, codes: int, eta: float, beta: float) -> None:
        super().__init__()
        self.eta, self.beta = eta, beta
        self.register_buffer("log_xi", torch.zeros(codes))
        self.register_buffer("log_xi_mean", torch.zeros(codes))

    def gate(self, z: torch.Tensor, log_xi: torch.Tensor) -> torch.Tensor:
        """Sparse code ``(..., N)`` of codes ``(..., N)`` given the previous ``log xi`` ``(N,)``.

        The logistic's argument is floored at ``LOGIT_FLOOR``: below it the code would be a
        subnormal float, on which CPU arithmetic is about a hundred times slower.
        """
        logit = self.beta * z + math.log(self.eta / (1 - self.eta)) - log_xi
        return torch.sigmoid(logit.clamp(min=LOGIT_FLOOR))

    def update(self, z: torch.Tensor) -> None:
        """Move ``xi`` past one training sample's code ``(N,)``."""
        self.log_xi = torch.logaddexp(
            math.log(self.eta) + self.beta * z, math.log(1 - self.eta) + self.log_xi
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 1 over consecutive training samples ``(B, N)``, in order; ``xi`` moves on."""
        out = []
        for row in z:
            out.append(self.gate(row, self.log_xi))
            self.update(row)
        return torch.stack(out)

    def fixed(self, z: torch.Tensor) -> torch.Tensor:
        """The fixed-gain logistic of a trained model (``xi`` at its training mean)."""
        return self.gate(z, self.log_xi_mean)


def shift_offsets(patch: int, depth: int) -> torch.Tensor:
    """Every searched shift ``(dt, dy, dx)``, ``(S, 3)``, in :func:`shifted_patches` order."""
    spatial, temporal = margins(patch, depth)
    axes = [torch.arange(-m, m + 1) for m in (temporal, spatial, spatial)]
    return torch.cartesian_prod(*axes).reshape(-1, 3)


def shifted_patches(neighbourhood: torch.Tensor, patch: int, depth: int) -> torch.Tensor:
    """Every shifted patch of one neighbourhood ``(C, T + 2a, M + 2s, M + 2s)``: ``(S, D)``.

    Row ``S // 2`` is the unshifted (centre) patch; each row is flattened ``(C, T, M, M)``.
    """
    # (C, Tn, Mn, Mn) -> (C, 2a+1, 2s+1, 2s+1, T, M, M): a view with every window
    windows = neighbourhood.unfold(1, depth, 1).unfold(2, patch, 1).unfold(3, patch, 1)
    # -> (2a+1, 2s+1, 2s+1, C, T, M, M) -> (S, C*T*M*M)
    return windows.permute(1, 2, 3, 0, 4, 5, 6).reshape(
        -1, neighbourhood.shape[0] * depth * patch * patch
    )


class SparseAutoEncoder(nn.Module):
    """Encoder, sparsifying logistic and decoder of §3 (see the module docstring).

    Args:
        patch: M.
        depth: T.
        codes: N.
        eta: eta of eq. 1.
        beta: beta of eq. 1.
        channels: C (1: gray).
        seed: Seed of the random initial weights.
    """

    def __init__(
        self,
        patch: int,
        depth: int,
        codes: int,
        eta: float,
        beta: float,
        channels: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.patch, self.depth, self.channels = patch, depth, channels
        size = channels * depth * patch * patch
        generator = torch.Generator().manual_seed(seed)

        def uniform(shape: tuple[int, int], fan_in: int) -> nn.Parameter:
            bound = 1 / math.sqrt(fan_in)
            return nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)

        self.encoder_weight = uniform((codes, size), size)  # W_E (N, D)
        self.encoder_bias = nn.Parameter(torch.zeros(codes))
        self.decoder_weight = uniform((size, codes), codes)  # W_D (D, N)
        self.decoder_bias = nn.Parameter(torch.zeros(()))
        self.logistic = SparsifyingLogistic(codes, eta, beta)
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))

    input_mean: torch.Tensor  # () mean of the training patch values
    input_std: torch.Tensor  # () their standard deviation

    def standardise(self, patches: torch.Tensor) -> torch.Tensor:
        """Raw patches (any shape) in the units the model works in."""
        return (patches - self.input_mean) / self.input_std

    @property
    def codes(self) -> int:
        """N."""
        return self.encoder_bias.numel()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``(..., N)`` of flattened patches ``(..., D)``."""
        return x @ self.encoder_weight.T + self.encoder_bias

    def decode(self, sparse: torch.Tensor) -> torch.Tensor:
        """Reconstructed patches ``(..., D)`` of sparse codes ``(..., N)``."""
        return sparse @ self.decoder_weight.T + self.decoder_bias

    def energy(self, x: torch.Tensor, z: torch.Tensor, log_xi: torch.Tensor) -> torch.Tensor:
        """Eq. 2 for patches ``(..., D)`` (already shifted) and codes ``(..., N)``: ``(...)``."""
        prediction = (z - self.encode(x)).square().sum(dim=-1)
        reconstruction = (self.decode(self.logistic.gate(z, log_xi)) - x).square().sum(dim=-1)
        return prediction + reconstruction

    def code_gradient(
        self, x: torch.Tensor, z: torch.Tensor, log_xi: torch.Tensor, dz: float
    ) -> torch.Tensor:
        """Eq. 6: the central finite difference of ``E`` in every code unit, ``(N,)``.

        Args:
            x: One shifted patch ``(D,)``.
            z: Its code ``(N,)``.
            log_xi: ``log xi`` of the previous training sample ``(N,)``.
            dz: The finite difference.
        """
        step = dz * torch.eye(self.codes, dtype=z.dtype)  # (N, N): row k moves unit k
        perturbed = torch.cat([z + step, z - step])  # (2N, N)
        energies = self.energy(x, perturbed, log_xi)  # (2N,)
        return (energies[: self.codes] - energies[self.codes :]) / (2 * dz)

    def optimise_code(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        log_xi: torch.Tensor,
        steps: int,
        lr: float,
        dz: float,
    ) -> torch.Tensor:
        """Eq. 4 by ``steps`` steps of steepest descent from ``z`` ``(N,)``: ``Z*`` ``(N,)``."""
        for _ in range(steps):
            z = z - lr * self.code_gradient(x, z, log_xi, dz)
        return z

    def search_shift(self, candidates: torch.Tensor, log_xi: torch.Tensor) -> int:
        """Eq. 3: the row of ``candidates`` ``(S, D)`` (the shifted patches) of least energy."""
        return int(self.energy(candidates, self.encode(candidates), log_xi).argmin())

    @torch.no_grad()
    def learn(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        sparse: torch.Tensor,
        encoder_lr: float,
        decoder_lr: float,
    ) -> None:
        """Eq. 5: one gradient step of ``E`` in ``W_E`` (towards ``Z*``) and ``W_D`` (towards x).

        The decoder's single bias feeds all D outputs, so its gradient is D times that of one
        weight: it moves by the *mean* output error (otherwise any step that trains the weights
        makes the bias diverge).

        Args:
            x: The shifted patch ``(D,)``.
            z: Its optimal code ``Z*`` ``(N,)``.
            sparse: The sparse version of ``Z*`` ``(N,)``.
            encoder_lr: Encoder step.
            decoder_lr: Decoder step.
        """
        encoder_error = self.encode(x) - z  # (N,)
        decoder_error = self.decode(sparse) - x  # (D,)
        self.encoder_weight.sub_(2 * encoder_lr * torch.outer(encoder_error, x))
        self.encoder_bias.sub_(2 * encoder_lr * encoder_error)
        self.decoder_weight.sub_(2 * decoder_lr * torch.outer(decoder_error, sparse))
        self.decoder_bias.sub_(2 * decoder_lr * decoder_error.mean())

    def features(self, x: torch.Tensor, code: CodeKind = "sparse") -> torch.Tensor:
        """Codes ``(..., N)`` of raw patches ``(..., D)`` by the trained model.

        Args:
            x: Raw patches.
            code: ``sparse``: the fixed-gain logistic of the encoder's output (the paper's
                features); ``linear``: the encoder's non-sparse output Z itself.
        """
        z = self.encode(self.standardise(x))
        return self.logistic.fixed(z) if code == "sparse" else z

    def basis(self) -> torch.Tensor:
        """Decoder responses to one-hot codes (Fig. 3): ``(N, C, T, M, M)``."""
        responses = self.decode(torch.eye(self.codes))  # (N, N) -> (N, D)
        shape = (self.codes, self.channels, self.depth, self.patch, self.patch)
        return responses.reshape(shape)  # (N, D) -> (N, C, T, M, M)


def build_autoencoder(settings: AutoEncoderConfig, seed: int = 0) -> SparseAutoEncoder:
    """An untrained auto-encoder with the config's sizes."""
    return SparseAutoEncoder(
        settings.patch,
        settings.depth,
        settings.codes,
        settings.eta,
        settings.beta,
        channels=1 if settings.grayscale else 3,
        seed=seed,
    )


@dataclass
class _EpochStats:
    """Running sums over one epoch of online training."""

    energy: float = 0.0
    active: float = 0.0
    shifted: int = 0

    def line(self, epoch: int, count: int, started: float) -> dict[str, Any]:
        return {
            "stage": "autoencoder",
            "ae_epoch": epoch,
            "energy": self.energy / count,
            "active_units": self.active / count,
            "shifted_fraction": self.shifted / count,
            "seconds": round(time.perf_counter() - started, 3),
        }


@torch.no_grad()
def train_autoencoder(
    neighbourhoods: np.ndarray, settings: AutoEncoderConfig, seed: int
) -> tuple[SparseAutoEncoder, list[dict[str, Any]]]:
    """Online training of §2.2 on motion-selected patches with their shift neighbourhoods.

    Args:
        neighbourhoods: ``(P, C, T + 2 (T // 2), M + 2 (M // 4), M + 2 (M // 4))`` patches.
        settings: The auto-encoder settings (``sparse_ae`` or ``activity`` section).
        seed: Seed of the initial weights and of the patch order of every epoch.

    Returns:
        The trained model (its logistic at fixed gain) and one metrics line per epoch: mean
        energy at the optimal code, mean number of active code units, share of shifted patches.
    """
    model = build_autoencoder(settings, seed)
    data = torch.from_numpy(np.ascontiguousarray(neighbourhoods, dtype=np.float32))
    model.input_mean, model.input_std = data.mean(), data.std().clamp(min=1e-6)
    data = model.standardise(data)
    centre = len(shift_offsets(settings.patch, settings.depth)) // 2
    generator = torch.Generator().manual_seed(seed)
    lines: list[dict[str, Any]] = []
    log_xi_sum = torch.zeros(model.codes)
    for epoch in range(settings.epochs):
        started, stats = time.perf_counter(), _EpochStats()
        search = settings.shift_search and epoch > 0  # shifts only once the model means something
        last = epoch == settings.epochs - 1
        order = torch.randperm(len(data), generator=generator).tolist()
        for index in track(order, total=len(order), description=f"auto-encoder epoch {epoch + 1}"):
            log_xi = model.logistic.log_xi
            candidates = shifted_patches(data[index], settings.patch, settings.depth)
            chosen = model.search_shift(candidates, log_xi) if search else centre
            x = candidates[chosen]
            z = model.optimise_code(
                x, model.encode(x), log_xi, settings.code_steps, settings.code_lr, settings.dz
            )
            sparse = model.logistic.gate(z, log_xi)
            stats.energy += float(model.energy(x, z, log_xi))
            stats.active += float((sparse > ACTIVE_LEVEL).sum())
            stats.shifted += chosen != centre
            model.learn(x, z, sparse, settings.encoder_lr, settings.decoder_lr)
            model.logistic.update(z)
            if last:
                log_xi_sum += model.logistic.log_xi
        lines.append(stats.line(epoch + 1, len(order), started))
    model.logistic.log_xi_mean = log_xi_sum / len(data)
    return model, lines
