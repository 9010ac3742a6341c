"""Clip samplers: which frames of a video form the clip(s) of one epoch.

A sampler returns the start frames ``(n_clips,)`` and frame indices ``(n_clips, clip_len)`` for
one video from a numpy generator it is given (never global random state). Videos shorter than a
clip are padded by repeating their edge frames, the video centred in the clip.

Samplers that learn from clip scores (:mod:`vidfer.data.stochastic_softmax`) are told the epoch
(:meth:`ClipSampler.set_epoch`) and the videos (:meth:`ClipSampler.bind`), ask for clean clip
scores (:meth:`ClipSampler.wants_scores`), receive them in :meth:`ClipSampler.observe` in the
training process, and keep their state in :meth:`ClipSampler.state_dict` so that resume is exact.
Within an epoch every video is drawn once, so a video's draw only depends on what was observed in
earlier epochs: loader workers, which copy the sampler at the start of an epoch, draw the same.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from vidfer.errors import ConfigError
from vidfer.registry import SAMPLERS


def clip_indices(start: int, clip_len: int, num_frames: int, step: int = 1) -> np.ndarray:
    """Indices of a clip of ``clip_len`` frames from ``start`` every ``step`` frames, clamped.

    Indices before the first or after the last frame repeat the edge frame.
    """
    return np.clip(start + step * np.arange(clip_len), 0, num_frames - 1).astype(np.int64)


def short_start(num_frames: int, span: int) -> int:
    """Start of a clip spanning ``span`` frames centred on a video of ``num_frames`` (<= span)."""
    return -((span - num_frames) // 2)


class ClipSampler(abc.ABC):
    """Base class: chooses frame indices for one video.

    Args:
        clip_len: Frames per clip.
        stride: Frames between consecutive clip frames (the temporal stride of the clip).
        num_clips: Clips per video (for multi-clip samplers).
    """

    def __init__(self, clip_len: int = 16, stride: int = 1, num_clips: int = 1) -> None:
        if clip_len < 1 or stride < 1 or num_clips < 1:
            raise ConfigError("sampler: clip_len, stride and num_clips must be >= 1")
        self.clip_len = clip_len
        self.stride = stride
        self.num_clips = num_clips
        self.epoch = 0

    @property
    def span(self) -> int:
        """Frames covered by one clip, first to last."""
        return (self.clip_len - 1) * self.stride + 1

    @abc.abstractmethod
    def starts(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Start frames ``(n_clips,)`` of the clips for one video."""

    def frames(self, starts: np.ndarray, num_frames: int) -> np.ndarray:
        """Frame indices ``(n_clips, clip_len)`` of the clips starting at ``starts``."""
        return np.stack(
            [clip_indices(int(s), self.clip_len, num_frames, self.stride) for s in starts]
        )

    def sample(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Frame indices ``(n_clips, clip_len)`` for video number ``video``.

        Args:
            video: Index of the video in its dataset (learning samplers keep per-video state).
            num_frames: Frames of the video (>= 1).
            rng: The generator to draw from.
        """
        if num_frames < 1:
            raise ValueError("a video needs at least one frame")
        return self.frames(self.starts(video, num_frames, rng), num_frames)

    def test_starts(self, num_frames: int, count: int) -> np.ndarray:
        """``count`` evenly spaced starts ``(count,)`` covering the video, for evaluation."""
        if num_frames <= self.span:
            return np.full(count, short_start(num_frames, self.span))
        return np.linspace(0, num_frames - self.span, count).round().astype(np.int64)

    def set_epoch(self, epoch: int) -> None:
        """The epoch (from 0) of the next draws."""
        self.epoch = epoch

    def bind(
        self, num_frames: Sequence[int], frame_labels: Sequence[Sequence[float] | None]
    ) -> None:
        """Meet the training videos (video ``i`` has ``num_frames[i]`` frames); no-op here."""
        del num_frames, frame_labels

    def wants_scores(self) -> bool:
        """True if :meth:`observe` needs the clean clips' scores in the current epoch."""
        return False

    def observe(
        self, video: int, starts: np.ndarray, logits: np.ndarray | None, label: int
    ) -> None:
        """Receive the clips drawn for ``video`` this epoch (no-op for samplers that do not learn).

        Args:
            video: Index of the video.
            starts: The clips' start frames ``(n_clips,)``.
            logits: Scores ``(n_clips, K)`` of the clips without augmentation, computed before
                the gradient step, or None when :meth:`wants_scores` was False.
            label: The video's class index.
        """
        del video, starts, logits, label

    def state_dict(self) -> dict[str, Any]:
        """Learned state (empty for samplers that do not learn)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state of :meth:`state_dict`."""
        del state


@SAMPLERS.register("uniform")
class UniformClip(ClipSampler):
    """Clips at uniformly random start positions (a new draw every epoch)."""

    def starts(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        if num_frames <= self.span:
            return np.full(self.num_clips, short_start(num_frames, self.span))
        return rng.integers(0, num_frames - self.span + 1, size=self.num_clips)


@SAMPLERS.register("center")
class CenterClip(ClipSampler):
    """The clip in the middle of the video (deterministic)."""

    def starts(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(self.num_clips, (num_frames - self.span) // 2)


@SAMPLERS.register("every_window")
class EveryWindow(ClipSampler):
    """Every window of ``clip_len`` frames, ``num_clips`` ignored: starts 0, s, 2s, ... where s is
    ``window_step`` (default 1); a short video gives one padded window. Used for evaluation by
    sliding windows."""

    def __init__(
        self, clip_len: int = 16, stride: int = 1, num_clips: int = 1, window_step: int = 1
    ) -> None:
        super().__init__(clip_len, stride, num_clips)
        if window_step < 1:
            raise ConfigError("sampler every_window: window_step must be >= 1")
        self.window_step = window_step

    def starts(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        if num_frames <= self.span:
            return np.array([short_start(num_frames, self.span)])
        return np.arange(0, num_frames - self.span + 1, self.window_step)


@SAMPLERS.register("temporal_resize")
class TemporalResize(ClipSampler):
    """The whole video resized in time to ``clip_len`` evenly spaced frames (deterministic).

    Longer videos are sub-sampled, shorter ones repeat frames; ``stride`` is ignored.
    """

    def starts(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(self.num_clips, dtype=np.int64)

    def frames(self, starts: np.ndarray, num_frames: int) -> np.ndarray:
        # Centres of clip_len equal bins over [0, num_frames): the same frames every epoch.
        centres = (np.arange(self.clip_len) + 0.5) * num_frames / self.clip_len
        indices = np.floor(centres).astype(np.int64)
        return np.repeat(indices[None, :], len(starts), axis=0)


@SAMPLERS.register("strided")
class StridedClips(ClipSampler):
    """``num_clips`` clips with frame stride ``stride``, starts evenly spread over the video.

    In training (``random=True``) each start is jittered uniformly within its share of the video.
    """

    def __init__(
        self, clip_len: int = 16, stride: int = 1, num_clips: int = 1, random: bool = True
    ) -> None:
        super().__init__(clip_len, stride, num_clips)
        self.random = random

    def starts(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        if num_frames <= self.span:
            return np.full(self.num_clips, short_start(num_frames, self.span))
        room = num_frames - self.span + 1  # valid starts are 0 .. room - 1
        edges = np.linspace(0, room, self.num_clips + 1)
        if self.random:
            low, high = (
                np.floor(edges[:-1]),
                np.maximum(np.floor(edges[1:]), np.floor(edges[:-1]) + 1),
            )
            return rng.integers(low.astype(np.int64), high.astype(np.int64))
        return np.floor((edges[:-1] + edges[1:]) / 2).astype(np.int64)


@SAMPLERS.register("clip_pairs")
class ClipPairs(ClipSampler):
    """FstCN's clip pairs (Sun et al. §2.2): ``num_clips`` clips of ``clip_len`` frames taken
    every ``stride`` frames, each followed by the same frames ``offset`` later, from which the
    model computes the difference clip ``|V(t) - V(t + offset)|``.

    Frame indices are ``(num_clips, 2 * clip_len)``: the clip, then its partner frames (clamped
    at the last frame). Starts are random; evaluation takes evenly spaced ones
    (:meth:`ClipSampler.test_starts`).

    Args:
        clip_len: ``l_t`` (default 5).
        stride: ``s_t`` (default 5).
        num_clips: Pairs per video (default 5).
        offset: ``d_t`` (default 9).
    """

    def __init__(
        self, clip_len: int = 5, stride: int = 5, num_clips: int = 5, offset: int = 9
    ) -> None:
        super().__init__(clip_len, stride, num_clips)
        if offset < 1:
            raise ConfigError("sampler clip_pairs: offset must be >= 1")
        self.offset = offset

    @property
    def span(self) -> int:
        """Frames covered by a pair: the clip and its partner frames."""
        return (self.clip_len - 1) * self.stride + 1 + self.offset

    def starts(self, video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        if num_frames <= self.span:
            return np.full(self.num_clips, short_start(num_frames, self.span))
        return rng.integers(0, num_frames - self.span + 1, size=self.num_clips)

    def frames(self, starts: np.ndarray, num_frames: int) -> np.ndarray:
        clips = super().frames(starts, num_frames)  # (n, clip_len)
        partners = super().frames(starts + self.offset, num_frames)  # (n, clip_len)
        return np.concatenate([clips, partners], axis=1)  # (n, 2 * clip_len)
