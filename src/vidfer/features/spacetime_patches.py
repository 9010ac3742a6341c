"""Space-time patches of videos: motion-selected training patches and block grids.

Baccouche et al. (2012) learn their sparse auto-encoder on ``M x M x T`` patches that move: a
patch is kept when the share of its pixels whose first and last frames differ by more than a
threshold exceeds another threshold (§2.2, the "motion-based patch selection module"). For the
shift search every training patch comes with its neighbourhood: ``M/4`` more pixels on each side
and ``T/2`` more frames before and after (§3), so that every shifted version can be cut from it.

At feature time, a video is cut into space-time blocks of ``T`` frames and every block into the
grid of ``floor(H/M) x floor(W/M)`` patches side by side (§4.2).

Videos here are float arrays ``(L, H, W, C)`` with intensities in ``[0, 1]``: one gray channel
as in the paper, or the three colour channels. A patch is flattened in ``(C, T, M, M)`` order.
"""

from __future__ import annotations

import numpy as np

from vidfer.errors import ConfigError

GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R 601 luma weights of the R, G, B channels."""


def video_volume(
    frames: np.ndarray, size: tuple[int, int] | None = None, grayscale: bool = True
) -> np.ndarray:
    """Stored uint8 frames ``(L, H, W, 3)`` -> float32 ``(L, H', W', C)`` in ``[0, 1]``.

    Args:
        frames: The prepared frames.
        size: ``(H', W')`` centre crop; None keeps the frames whole.
        grayscale: One gray channel (ITU-R 601 luma), else the three colour channels.

    Raises:
        ConfigError: if the frames are smaller than ``size``.
    """
    height, width = frames.shape[1:3]
    if size is not None:
        crop_h, crop_w = size
        if crop_h > height or crop_w > width:
            raise ConfigError(
                f"frame_size {[crop_h, crop_w]} exceeds the stored frames "
                f"({height}x{width}); raise data.prepare.size"
            )
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        frames = frames[:, top : top + crop_h, left : left + crop_w]
    volume = np.asarray(frames, dtype=np.float32) / 255.0  # (L, H', W', 3)
    return volume @ GRAY_WEIGHTS[:, None] if grayscale else volume  # -> (L, H', W', C)


def margins(patch: int, depth: int) -> tuple[int, int]:
    """Largest spatial and temporal shifts searched: ``(M // 4, T // 2)``."""
    return patch // 4, depth // 2


def moving_share(video: np.ndarray, patch: int, depth: int, pixel: float) -> np.ndarray:
    """Share of moving pixels of the patch at every position.

    Args:
        video: Video ``(L, H, W, C)``.
        patch: M.
        depth: T.
        pixel: A pixel moves when ``|first - last|`` exceeds this in one of its channels.

    Returns:
        ``(L - T + 1, H - M + 1, W - M + 1)``: entry ``(t, y, x)`` is the share for the patch
        whose first frame is ``t`` and whose top-left pixel is ``(y, x)``.
    """
    change = np.abs(video[depth - 1 :] - video[: len(video) - depth + 1]).max(axis=3)
    moving = (change > pixel).astype(np.float64)  # (L - T + 1, H, W)
    # Box sums over every M x M window from a zero-padded integral image.
    integral = np.pad(moving.cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0)))
    sums = (
        integral[:, patch:, patch:]
        - integral[:, :-patch, patch:]
        - integral[:, patch:, :-patch]
        + integral[:, :-patch, :-patch]
    )
    return sums / (patch * patch)


def sample_neighbourhoods(
    video: np.ndarray,
    patch: int,
    depth: int,
    pixel: float,
    share: float,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Up to ``count`` moving patches of one video, each with its shift neighbourhood.

    A position qualifies when its central ``M x M x T`` patch has a share of moving pixels above
    ``share`` and its whole neighbourhood lies inside the video; ``count`` of the qualifying
    positions are drawn without replacement (all when fewer).

    Returns:
        ``(n, C, T + 2 * (T // 2), M + 2 * (M // 4), M + 2 * (M // 4))`` float32, ``n <= count``.
    """
    spatial, temporal = margins(patch, depth)
    shares = moving_share(video, patch, depth, pixel)
    # Central patches whose neighbourhood fits: drop the margins on every side.
    inner = shares[
        temporal : shares.shape[0] - temporal,
        spatial : shares.shape[1] - spatial,
        spatial : shares.shape[2] - spatial,
    ]
    positions = np.argwhere(inner > share)  # (n, 3): neighbourhood corners (t, y, x)
    if len(positions) > count:
        positions = positions[np.sort(rng.choice(len(positions), count, replace=False))]
    size_t, size_s = depth + 2 * temporal, patch + 2 * spatial
    out = np.empty((len(positions), video.shape[3], size_t, size_s, size_s), dtype=np.float32)
    for row, (t, y, x) in enumerate(positions):
        # (T', M', M', C) -> (C, T', M', M')
        out[row] = video[t : t + size_t, y : y + size_s, x : x + size_s].transpose(3, 0, 1, 2)
    return out


def block_patches(video: np.ndarray, patch: int, depth: int, stride: int) -> np.ndarray:
    """The grid of patches of every space-time block.

    Blocks start every ``stride`` frames (the last one ends at or before the last frame);
    patches tile each block from the top-left corner (a remainder of under ``M`` pixels on the
    right or bottom is not used).

    Returns:
        ``(S, G, C * T * M * M)`` with ``S`` blocks and ``G = floor(H/M) * floor(W/M)``
        positions in row-major order; each patch flattened in ``(C, T, M, M)`` order.

    Raises:
        ConfigError: if the video has fewer than ``depth`` frames.
    """
    length, height, width, channels = video.shape
    if length < depth:
        raise ConfigError(f"depth {depth}: a video has only {length} frames; lower the patch depth")
    rows, cols = height // patch, width // patch
    starts = np.arange(0, length - depth + 1, stride)
    blocks = np.stack([video[s : s + depth, : rows * patch, : cols * patch] for s in starts])
    # (S, T, rows*M, cols*M, C) -> (S, T, rows, M, cols, M, C) -> (S, rows, cols, C, T, M, M)
    grid = blocks.reshape(len(starts), depth, rows, patch, cols, patch, channels)
    grid = grid.transpose(0, 2, 4, 6, 1, 3, 5)
    return grid.reshape(len(starts), rows * cols, -1)  # -> (S, G, C*T*M*M)
