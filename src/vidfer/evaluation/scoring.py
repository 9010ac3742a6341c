"""Whole-video scoring: a temporal score map for every video, in bounded memory.

A temporally dense, fully convolutional model scores a whole video in one forward pass; without
temporal padding that pass equals scoring every window of its receptive field separately, at a
fraction of the cost. Models that only score fixed clips are slid over the video in windows.

Long videos are scored in chunks of ``eval.chunk_frames`` frames, streamed from their source
(the memory-mapped store, or a decoder), so that memory does not grow with the video's length.
Consecutive chunks overlap by the frames an output step needs beyond its own stride (the receptive
field minus the stride: ``R - 1`` for a temporally dense model), and from each chunk only the steps
whose whole receptive field lies inside it are kept (or that reach past a video edge the chunk
shares, where a chunk's padding is the video's). Each kept step therefore sees exactly what it sees
in one pass, and the stitched score map equals the one-pass map. Models whose attention mixes time
over the whole input (``geometry.global_time``) are always scored in one pass.

A model whose head pools time at feature level (``model.pooling_level: feature``) is scored per
step here too (:func:`vidfer.models.heads.every_step`): the average of its per-step scores, the
video score its ``avg`` pooling gives, is its classifier applied to the features averaged over
the whole video (dense mode) or over each window (``windows`` mode, then averaged over the
windows), exactly, whatever the chunks. In training it averages the features of each clip; at
test time it averages over the video, as score-level pooling does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vidfer.config import EvalConfig
from vidfer.data.samplers import clip_indices, short_start
from vidfer.models.base import TemporalGeometry, VideoModel
from vidfer.models.heads import every_step


@dataclass(frozen=True)
class ScoreMap:
    """Class scores over time for one video.

    Attributes:
        scores: Logits ``(K, T')``.
        centres: Frame position ``(T',)`` (in the scored frames) at the centre of each step.
    """

    scores: torch.Tensor
    centres: np.ndarray

    def per_frame(self, num_frames: int) -> torch.Tensor:
        """Scores ``(K, num_frames)``: each frame takes the step whose centre is nearest (the
        first such step on a tie)."""
        # Centres never decrease: a binary search per frame, in memory linear in the length.
        centres = self.centres
        frames = np.arange(num_frames)
        after = np.searchsorted(centres, frames).clip(max=len(centres) - 1)  # first >= frame
        before = np.searchsorted(centres, centres[(after - 1).clip(min=0)])  # first just below
        nearest = np.where(
            np.abs(frames - centres[before]) <= np.abs(centres[after] - frames), before, after
        )  # (num_frames,)
        return self.scores[:, torch.as_tensor(nearest)]


Forward = Callable[[torch.Tensor], torch.Tensor]


class _Frames:
    """The buffered frames ``(C, n, H, W)`` of a streamed video, from frame ``start`` on."""

    def __init__(self) -> None:
        self.data: torch.Tensor | None = None
        self.start = 0

    @property
    def end(self) -> int:
        """Frames received so far (the index after the last buffered frame)."""
        return self.start + (0 if self.data is None else self.data.shape[1])

    def extend(self, block: torch.Tensor) -> None:
        """Append the next frames ``(C, n, H, W)``."""
        self.data = block if self.data is None else torch.cat([self.data, block], dim=1)

    def take(self, start: int, stop: int) -> torch.Tensor:
        """Frames ``[start, stop)`` (video indices; all buffered) as ``(C, stop - start, H, W)``."""
        assert self.data is not None and self.start <= start and stop <= self.end
        return self.data[:, start - self.start : stop - self.start]

    def drop_before(self, start: int) -> None:
        """Forget the frames before ``start``."""
        if self.data is not None and start > self.start:
            # A copy, so that the dropped frames' memory is released.
            self.data = self.data[:, start - self.start :].clone()
            self.start = start


def min_chunk_frames(geometry: TemporalGeometry) -> int:
    """The shortest chunk that always yields a new output step: ``R + 2 S`` frames."""
    return geometry.receptive_field + 2 * geometry.stride


def _one_pass(forward: Forward, geometry: TemporalGeometry, clip: torch.Tensor) -> torch.Tensor:
    """Scores ``(X, T')`` of a whole clip ``(C, T, H, W)`` (a short one padded to one step)."""
    num_frames = clip.shape[1]
    needed = max(geometry.receptive_field - 2 * geometry.padding, 1)
    if num_frames < needed:
        # Too short for one output step: repeat edge frames, the video centred.
        offset = short_start(num_frames, needed)
        clip = clip[:, torch.as_tensor(clip_indices(offset, needed, num_frames))]
    return forward(clip.unsqueeze(0))[0]  # (1, C, T, H, W) -> (X, T')


def _centres(geometry: TemporalGeometry, steps: int, num_frames: int) -> np.ndarray:
    offset = 0
    needed = max(geometry.receptive_field - 2 * geometry.padding, 1)
    if num_frames < needed:
        offset = short_start(num_frames, needed)
    centres = np.array([geometry.centre_frame(step) for step in range(steps)]) + offset
    return np.clip(centres, 0, num_frames - 1)


def _dense(
    forward: Forward,
    geometry: TemporalGeometry,
    blocks: Iterable[torch.Tensor],
    chunk_frames: int | None,
) -> ScoreMap:
    """One pass when the video fits in a chunk; else overlapping chunks, stitched."""
    if chunk_frames is None or geometry.global_time:
        chunk = None
    else:
        chunk = max(chunk_frames, min_chunk_frames(geometry))
    frames = _Frames()
    pieces: list[torch.Tensor] = []  # (X, n) score steps, in order
    next_step = 0  # the first output step not computed yet

    def score_chunk(stop: int, last_step: int) -> None:
        """Score frames ``[frames.start, stop)``, keep steps ``next_step .. last_step``."""
        nonlocal next_step
        first = frames.start // geometry.stride  # the chunk's step 0 is this video step
        scores = forward(frames.take(frames.start, stop).unsqueeze(0))[0]  # (X, n)
        pieces.append(scores[:, next_step - first : last_step - first + 1])
        next_step = last_step + 1
        # The next chunk starts where the next step's receptive field does, on the stride grid
        # (every chunk must start on it, for its steps to line up with the video's).
        start = max(next_step * geometry.stride - geometry.padding, 0)
        frames.drop_before(start // geometry.stride * geometry.stride)

    for block in blocks:
        frames.extend(block)
        # More frames than a chunk: the chunk does not end the video, so its last steps (whose
        # receptive field reaches past its end) are left for the next chunk.
        while chunk is not None and frames.end - frames.start > chunk:
            stop = frames.start + chunk
            last = (stop - geometry.receptive_field + geometry.padding) // geometry.stride
            score_chunk(stop, last)
    num_frames = frames.end
    if not pieces:
        scores = _one_pass(forward, geometry, frames.take(0, num_frames))
    else:
        last = geometry.output_length(num_frames) - 1
        if next_step <= last:
            score_chunk(num_frames, last)
        scores = torch.cat(pieces, dim=1)  # (X, T')
    return ScoreMap(scores=scores, centres=_centres(geometry, scores.shape[1], num_frames))


def _windows(forward: Forward, blocks: Iterable[torch.Tensor], config: EvalConfig) -> ScoreMap:
    """Every window of ``clip_len`` frames, step ``stride``, scored in batches as they arrive."""
    length, step = config.clip_len, config.stride
    frames = _Frames()
    pooled: list[torch.Tensor] = []  # (b, X) window scores
    batch: list[torch.Tensor] = []  # windows (C, L, H, W) waiting for a forward pass
    centres: list[float] = []  # one per window

    def flush() -> None:
        if batch:
            pooled.append(forward(torch.stack(batch)).mean(dim=2))  # (b, X, T'_w) -> (b, X)
            batch.clear()

    for block in blocks:
        frames.extend(block)
        start = len(centres) * step
        while start + length <= frames.end:
            batch.append(frames.take(start, start + length))
            centres.append(start + (length - 1) / 2)
            if len(batch) == config.batch_size:
                flush()
            start += step
        frames.drop_before(start)
    if not centres:  # shorter than a window: one window, the video centred, edges repeated
        num_frames = frames.end
        indices = clip_indices(short_start(num_frames, length), length, num_frames)
        batch.append(frames.take(0, num_frames)[:, torch.as_tensor(indices)])
        centres.append(float(indices.mean()))
    flush()
    scores = torch.cat(pooled).T  # (n, X) -> (X, n)
    return ScoreMap(scores=scores, centres=np.asarray(centres))


def _over_video(
    forward: Forward, model: VideoModel, blocks: Iterable[torch.Tensor], config: EvalConfig
) -> ScoreMap:
    if config.mode == "dense" and model.geometry.dense:
        return _dense(forward, model.geometry, blocks, config.chunk_frames)
    return _windows(forward, blocks, config)


@torch.no_grad()
def score_stream(model: VideoModel, blocks: Iterable[torch.Tensor], config: EvalConfig) -> ScoreMap:
    """Score a whole video that arrives in consecutive blocks of frames.

    Args:
        model: A video model in eval mode.
        blocks: The video's frames, transformed, in order: blocks ``(C, n, H, W)`` on the
            model's device (any sizes). Consumed lazily: at most
            a chunk and a block are held at a time.
        config: ``mode="dense"`` uses one pass (or chunks of ``chunk_frames``, stitched) when
            the model is temporally dense; ``"windows"`` slides ``clip_len``-frame windows with
            step ``stride``.

    Returns:
        The per-step score map, at feature level too (the head is read at every step).
    """
    with every_step(model):
        return _over_video(model, model, blocks, config)


def score_video(model: VideoModel, clip: torch.Tensor, config: EvalConfig) -> ScoreMap:
    """Score a whole video held in memory.

    Args:
        model: A video model in eval mode.
        clip: The whole video, transformed, ``(C, T, H, W)`` on the model's device.
        config: As in :func:`score_stream`.
    """
    return score_stream(model, [clip], config)


def frame_pieces(frames: np.ndarray, piece_frames: int | None) -> Iterator[np.ndarray]:
    """Consecutive pieces ``(n, H, W, C)`` of stored frames ``(T, H, W, C)``.

    Only one piece of ``frames`` (e.g. a memory-mapped store array) is read at a time;
    ``piece_frames`` None gives the whole video as one piece.
    """
    step = piece_frames or len(frames)
    for start in range(0, len(frames), step):
        yield frames[start : start + step]


@torch.no_grad()
def feature_sequence(model: VideoModel, clip: torch.Tensor, config: EvalConfig) -> ScoreMap:
    """Backbone features of a whole video, averaged over space: a map ``(F, T')``.

    The same passes as :func:`score_video` (one pass, chunks or windows) on
    :meth:`VideoModel.forward_features`; ``scores`` then holds the features.
    """

    def features(x: torch.Tensor) -> torch.Tensor:
        return model.forward_features(x).mean(dim=(3, 4))  # (B, F, T', H', W') -> (B, F, T')

    return _over_video(features, model, [clip], config)


def video_logits(score_map: ScoreMap, pooling: nn.Module) -> torch.Tensor:
    """Video-level logits ``(K,)`` by temporal pooling of a score map."""
    return pooling(score_map.scores.unsqueeze(0))[0]  # (1, K, T') -> (K,)
