"""Temporal stochastic softmax training (Ayral's thesis, chapter 3) and its two alternatives.

Every sampler here keeps, for each training video, one value per clip start position
``t = 0 .. N - 1`` (``N = L - span + 1``; one position for a video shorter than a clip) and draws
the epoch's clip from the softmax of those values with inverse temperature ``gamma`` (eq. 3.8):

- ``stochastic_softmax`` (§3.2.3, Algorithm 3.1): the values ``w`` are running estimates of the
  clip scores of the video's class, measured on the clean (non-augmented) clip before the gradient
  step and spread to the neighbouring starts by the linear rule of eq. (3.9). Training has three
  phases (§3.2.4): uniform warm-up without updates, deterministic exploration of evenly spaced
  positions (each exploration epoch initialises its share of ``w``), then weighted exploitation.
- ``reinforce`` (eq. 3.5): the values are parameters ``theta`` of the sampling distribution
  ``q = softmax(gamma * theta)``, moved by the REINFORCE estimate of the gradient of the expected
  clip loss, with a running-mean baseline of the loss.
- ``guided``: the values are fixed, the mean of the manifest's per-frame labels over each clip
  (the PSPI-guided sampling of §3.3.2.3); no warm-up or exploration is needed.

All three are one clip per video per epoch (``num_clips`` 1), and record the position drawn at
every epoch so that the sampling maps of Figures 3.2-3.8 can be drawn
(:func:`vidfer.viz.sampling.plot_sampling_maps`). Test-time pooling uses its own temperature
``gamma_p`` (the ``eval.pooling`` config, e.g. ``softmax`` with ``gamma: 1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vidfer.data.samplers import ClipSampler, short_start
from vidfer.errors import CheckpointError, ConfigError
from vidfer.registry import SAMPLERS

PHASES = ("warmup", "explore", "exploit")


def softmax(values: np.ndarray, gamma: float) -> np.ndarray:
    """``exp(gamma * v) / sum exp(gamma * v)`` over the last axis, computed stably."""
    scaled = gamma * values
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=-1, keepdims=True)


def propagate(values: np.ndarray, position: int, score: float, radius: int) -> None:
    """Eq. (3.9) in place: ``w[t+i] += (F - |i|) / F * (score - w[t+i])`` for ``|i| < F``.

    The drawn position takes the new score, ``F = radius`` positions away nothing changes.
    """
    low, high = max(position - radius + 1, 0), min(position + radius, len(values))
    offsets = np.arange(low, high) - position  # (n,) in (-F, F)
    rate = (radius - np.abs(offsets)) / radius  # (n,) in (0, 1]
    values[low:high] += rate * (score - values[low:high])


class PositionSampler(ClipSampler):
    """Base of the samplers that draw a start from ``softmax(gamma * values)`` of each video.

    Args:
        clip_len: Frames per clip.
        stride: Frames between consecutive clip frames.
        num_clips: Must be 1 (one clip per video per epoch).
        gamma: Inverse temperature ``gamma_s`` of the sampling softmax (0: uniform).
        warmup: Epochs of uniform sampling at the start, without updates (default: the class's
            ``default_phases[0]``).
        explore: Epochs of deterministic exploration after the warm-up (default:
            ``default_phases[1]``).

    Raises:
        ConfigError: on an invalid option.
    """

    default_phases = (3, 5)  # (warm-up, exploration) epochs when not configured
    learns_from_scores = True  # wants the clean clips' scores after the warm-up

    def __init__(
        self,
        clip_len: int = 16,
        stride: int = 1,
        num_clips: int = 1,
        *,
        gamma: float = 1.0,
        warmup: int | None = None,
        explore: int | None = None,
    ) -> None:
        super().__init__(clip_len, stride, num_clips)
        name = type(self).__name__
        warmup = self.default_phases[0] if warmup is None else warmup
        explore = self.default_phases[1] if explore is None else explore
        if num_clips != 1:
            raise ConfigError(f"sampler {name}: num_clips must be 1 (one clip per video and epoch)")
        if not gamma >= 0 or warmup < 0 or explore < 0:
            raise ConfigError(f"sampler {name}: gamma, warmup and explore must be >= 0")
        self.gamma = float(gamma)
        self.warmup = warmup
        self.explore = explore
        self.values: list[np.ndarray] = []  # per video, (N,) float64
        self.history: list[list[int]] = []  # per video, the position drawn at each epoch

    def positions(self, num_frames: int) -> int:
        """Clip start positions ``N`` of a video (1 when it is not longer than a clip)."""
        return max(num_frames - self.span + 1, 1)

    def phase(self, epoch: int) -> str:
        """``warmup``, ``explore`` or ``exploit`` (the training phases of §3.2.4)."""
        if epoch < self.warmup:
            return "warmup"
        return "explore" if epoch < self.warmup + self.explore else "exploit"

    def bind(
        self, num_frames: Sequence[int], frame_labels: Sequence[Sequence[float] | None]
    ) -> None:
        """One value per start position for every video, all 0 (uniform distributions)."""
        del frame_labels
        self.values = [np.zeros(self.positions(n)) for n in num_frames]
        self.history = [[] for _ in num_frames]

    def wants_scores(self) -> bool:
        return self.learns_from_scores and self.phase(self.epoch) != "warmup"

    def distribution(self, video: int) -> np.ndarray:
        """The sampling distribution ``(N,)`` of a video over its start positions (eq. 3.8)."""
        return softmax(self.values[video], self.gamma)

    def starts(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        count = self.positions(num_frames)
        if num_frames <= self.span:
            return np.array([short_start(num_frames, self.span)])
        phase = self.phase(self.epoch)
        if phase == "warmup":
            return rng.integers(0, count, size=1)
        if phase == "explore":
            # Exploration epoch k takes the centre of the k-th of ``explore`` equal shares.
            share = self.epoch - self.warmup
            return np.array([int((share + 0.5) * count / self.explore)])
        return np.array([rng.choice(count, p=self.distribution(video))])

    def observe(
        self, video: int, starts: np.ndarray, logits: np.ndarray | None, label: int
    ) -> None:
        position = max(int(starts[0]), 0)
        self.history[video].append(position)
        phase = self.phase(self.epoch)
        if phase != "warmup" and logits is not None:
            self.update(video, position, logits[0], label, phase)

    def update(self, video: int, position: int, logits: np.ndarray, label: int, phase: str) -> None:
        """Learn from the clean scores ``(K,)`` of the clip drawn at ``position`` (no-op here)."""
        del video, position, logits, label, phase

    def state_dict(self) -> dict[str, Any]:
        return {
            "values": [torch.from_numpy(v.copy()) for v in self.values],
            "history": [list(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = [v.numpy().astype(np.float64) for v in state["values"]]
        expected = [len(v) for v in self.values]
        if [len(v) for v in values] != expected:
            raise CheckpointError(
                f"the checkpoint's sampler state covers {len(values)} videos that do not match "
                f"the {len(expected)} training videos of this dataset; resume with the run's "
                "own data"
            )
        self.values = values
        self.history = [list(h) for h in state["history"]]


@SAMPLERS.register("stochastic_softmax")
class StochasticSoftmax(PositionSampler):
    """Temporal stochastic softmax sampling (Algorithm 3.1).

    Args:
        clip_len: Frames per clip.
        stride: Frames between consecutive clip frames.
        num_clips: Must be 1.
        gamma: Inverse temperature ``gamma_s`` (thesis: 0, 0.5, 1, 10; 1 is best on AFEW).
        warmup: Uniform warm-up epochs (default 3, the thesis's).
        explore: Deterministic exploration epochs (default 5, the thesis's).
        radius: ``F`` of eq. (3.9), the positions an update reaches on each side (default:
            ``clip_len``, the thesis's 16 frames for 16-frame clips).
        score: ``"logit"`` (the thesis: the clip's logit of the video's class) or
            ``"probability"`` (its softmax probability).

    Raises:
        ConfigError: on an invalid option.
    """

    def __init__(
        self,
        clip_len: int = 16,
        stride: int = 1,
        num_clips: int = 1,
        *,
        gamma: float = 1.0,
        warmup: int | None = None,
        explore: int | None = None,
        radius: int | None = None,
        score: str = "logit",
    ) -> None:
        super().__init__(clip_len, stride, num_clips, gamma=gamma, warmup=warmup, explore=explore)
        if score not in ("logit", "probability"):
            raise ConfigError(
                f"sampler stochastic_softmax: score {score!r} must be logit or probability"
            )
        self.radius = clip_len if radius is None else radius
        if self.radius < 1:
            raise ConfigError("sampler stochastic_softmax: radius must be >= 1")
        self.score = score

    def update(self, video: int, position: int, logits: np.ndarray, label: int, phase: str) -> None:
        score = float(logits[label])
        if self.score == "probability":
            score = float(softmax(logits.astype(np.float64), 1.0)[label])
        values = self.values[video]
        if phase == "explore":
            # Initialise the exploration epoch's share of the distribution with its one score.
            share = self.epoch - self.warmup
            low = share * len(values) // self.explore
            high = max((share + 1) * len(values) // self.explore, low + 1)
            values[low:high] = score
        else:
            propagate(values, position, score, self.radius)


@SAMPLERS.register("reinforce")
class Reinforce(PositionSampler):
    """REINFORCE estimation of the sampling distribution (eq. 3.5), the thesis's baseline.

    After each clip with loss ``l`` (cross-entropy of its clean scores):
    ``theta -= lr * (l - b) * (onehot(t) - q)`` with ``q = softmax(gamma * theta)`` and ``b``
    a running mean of the losses (momentum 0.9).

    Args:
        clip_len: Frames per clip.
        stride: Frames between consecutive clip frames.
        num_clips: Must be 1.
        gamma: Inverse temperature of the sampling softmax.
        warmup: Uniform warm-up epochs without updates (default 3).
        explore: Deterministic exploration epochs (default 0: REINFORCE starts from uniform).
        lr: Step size of the parameter updates.

    Raises:
        ConfigError: on an invalid option.
    """

    default_phases = (3, 0)

    def __init__(
        self,
        clip_len: int = 16,
        stride: int = 1,
        num_clips: int = 1,
        *,
        gamma: float = 1.0,
        warmup: int | None = None,
        explore: int | None = None,
        lr: float = 1.0,
    ) -> None:
        super().__init__(clip_len, stride, num_clips, gamma=gamma, warmup=warmup, explore=explore)
        if not lr > 0:
            raise ConfigError("sampler reinforce: lr must be > 0")
        self.lr = lr
        self.baseline: float | None = None

    def update(self, video: int, position: int, logits: np.ndarray, label: int, phase: str) -> None:
        log_probs = logits.astype(np.float64) - np.logaddexp.reduce(logits.astype(np.float64))
        loss = float(-log_probs[label])
        baseline = loss if self.baseline is None else self.baseline
        self.baseline = 0.9 * baseline + 0.1 * loss
        gradient = -self.distribution(video)  # d log q_t / d theta = onehot(t) - q (times gamma)
        gradient[position] += 1.0
        self.values[video] -= self.lr * (loss - baseline) * gradient

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline = state["baseline"]


@SAMPLERS.register("guided")
class Guided(PositionSampler):
    """Sampling guided by per-frame labels (thesis §3.3.2.3: PSPI pain intensity).

    Each start's value is the mean frame label over the clip's frames; nothing is learned. Needs
    the manifest's ``frame_labels`` column for every training video.

    Args:
        clip_len: Frames per clip.
        stride: Frames between consecutive clip frames.
        num_clips: Must be 1.
        gamma: Inverse temperature (thesis: 0.8 for PSPI values in 0-16).
        warmup: Uniform warm-up epochs (default 0: the labels are meaningful from the start).
        explore: Deterministic exploration epochs (default 0).

    Raises:
        ConfigError: on an invalid option, or (when bound) a video without frame labels.
    """

    default_phases = (0, 0)  # the labels are meaningful from the first epoch
    learns_from_scores = False

    def bind(
        self, num_frames: Sequence[int], frame_labels: Sequence[Sequence[float] | None]
    ) -> None:
        super().bind(num_frames, frame_labels)
        for video, (count, labels) in enumerate(zip(num_frames, frame_labels, strict=True)):
            if labels is None:
                raise ConfigError(
                    f"sampler guided: training video #{video} has no frame labels; add a "
                    "frame_labels column to the manifest (one value per frame) or use "
                    "sampler stochastic_softmax"
                )
            starts = np.arange(self.positions(count))
            if count <= self.span:
                starts = np.array([short_start(count, self.span)])
            clips = self.frames(starts, count)  # (N, clip_len) frame indices
            self.values[video] = np.asarray(labels, dtype=np.float64)[clips].mean(axis=1)
