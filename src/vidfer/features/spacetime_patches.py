"""Space-time patches of videos: motion-selected training patches and block grids.

Baccouche et al. (2012) learn their sparse auto-encoder on ``M x M x T`` patches that move: a
patch is kept when the share of its pixels whose first and last frames differ by more than a
threshold exceeds another threshold (§2.2, the "motion-based patch selection module"). For the
shift search every training patch comes with its neighbourhood: ``M/4`` more pixels on each side
and ``T/2`` more frames before and after (§3), so that every shifted version can be cut from it.

At feature time, a video is cut into space-time blocks of ``T`` frames and every block into the
grid of ``floor(H/M) x floor(W/M)`` patches side by side (§4.2). On KTH the paper encodes a
person-centred box; :class:`MotionCrop` is its analogue without a person detector: each block is
cropped where the moving pixels are, so that a body part keeps its grid cell while the actor
crosses the frame (the motion inside a block is kept, the crop is fixed for its T frames).
:class:`BlockCutter` cuts the blocks of a video that arrives piece by piece (``vidfer predict``),
the whole video being one piece.

Videos here are float arrays ``(L, H, W, C)`` with intensities in ``[0, 1]``: one gray channel
as in the paper, or the three colour channels. A patch is flattened in ``(C, T, M, M)`` order.
"""

from __future__ import annotations

import numpy as np

from vidfer.errors import ConfigError
from vidfer.models.sparse_autoencoder import margins

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


def moving_pixels(video: np.ndarray, depth: int, pixel: float) -> np.ndarray:
    """``(L - T + 1, H, W)`` float: 1 where a pixel's first and last frames of the block starting
    at each frame differ by more than ``pixel`` in one of the channels of video ``(L, H, W, C)``.
    """
    change = np.abs(video[depth - 1 :] - video[: len(video) - depth + 1]).max(axis=3)
    return (change > pixel).astype(np.float64)


def box_sums(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sums of every ``height x width`` window of ``(..., H, W)``: ``(..., H-h+1, W-w+1)``."""
    # From a zero-padded integral image over the last two axes.
    pad = [(0, 0)] * (values.ndim - 2) + [(1, 0), (1, 0)]
    integral = np.pad(values.cumsum(axis=-2).cumsum(axis=-1), pad)
    return (
        integral[..., height:, width:]
        - integral[..., :-height, width:]
        - integral[..., height:, :-width]
        + integral[..., :-height, :-width]
    )


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
    return box_sums(moving_pixels(video, depth, pixel), patch, patch) / (patch * patch)


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


def block_starts(length: int, depth: int, stride: int) -> np.ndarray:
    """First frames of the blocks: every ``stride`` frames, the last ending at or before the end.

    Raises:
        ConfigError: if the video has fewer than ``depth`` frames.
    """
    if length < depth:
        raise ConfigError(f"depth {depth}: a video has only {length} frames; lower the patch depth")
    return np.arange(0, length - depth + 1, stride)


def grid_patches(blocks: np.ndarray, patch: int) -> np.ndarray:
    """Blocks ``(S, T, H, W, C)`` cut into their grid of patches: ``(S, G, C * T * M * M)``.

    Patches tile each block from the top-left corner (a remainder of under ``M`` pixels on the
    right or bottom is not used); the ``G = floor(H/M) * floor(W/M)`` positions are in
    row-major order and each patch is flattened in ``(C, T, M, M)`` order.
    """
    count, depth, height, width, channels = blocks.shape
    rows, cols = height // patch, width // patch
    blocks = blocks[:, :, : rows * patch, : cols * patch]
    # (S, T, rows*M, cols*M, C) -> (S, T, rows, M, cols, M, C) -> (S, rows, cols, C, T, M, M)
    grid = blocks.reshape(count, depth, rows, patch, cols, patch, channels)
    grid = grid.transpose(0, 2, 4, 6, 1, 3, 5)
    return grid.reshape(count, rows * cols, channels * depth * patch * patch)  # -> (S, G, C*T*M*M)


class BlockCutter:
    """A video's space-time blocks, cut as its frames arrive piece by piece.

    Blocks start every ``stride`` frames and span ``depth`` (:func:`block_starts`). The frames a
    later block still needs (fewer than ``depth``) are carried over to the next piece, so that a
    video pushed in any pieces gives the blocks of the video pushed whole.

    Attributes:
        depth: T, frames per block.
        stride: Frames between the first frames of consecutive blocks.
        frames: Frames pushed so far.
    """

    def __init__(self, depth: int, stride: int) -> None:
        self.depth = depth
        self.stride = stride
        self.frames = 0
        self._next = 0  # first frame of the next block
        self._origin = 0  # frame index of the first carried frame
        self._carried: np.ndarray | None = None  # (n < T, H, W, C)

    def push(self, piece: np.ndarray) -> np.ndarray:
        """The blocks ``(k, T, H, W, C)`` that the frames ``(n, H, W, C)`` of ``piece`` complete."""
        frames = piece if self._carried is None else np.concatenate([self._carried, piece])
        self.frames += len(piece)
        starts = np.arange(self._next, self.frames - self.depth + 1, self.stride)
        blocks = np.empty((len(starts), self.depth, *frames.shape[1:]), dtype=frames.dtype)
        for row, start in enumerate(starts - self._origin):
            blocks[row] = frames[start : start + self.depth]
        self._next += len(starts) * self.stride
        keep = min(self._next, self.frames)
        self._carried = frames[keep - self._origin :].copy()
        self._origin = keep
        return blocks

    def close(self) -> np.ndarray:
        """The first frames of all the blocks of the video pushed (:func:`block_starts`).

        Raises:
            ConfigError: if the video has fewer than ``depth`` frames.
        """
        return block_starts(self.frames, self.depth, self.stride)


def video_blocks(video: np.ndarray, depth: int, stride: int) -> np.ndarray:
    """Every block ``(S, T, H, W, C)`` of a whole video ``(L, H, W, C)`` (:class:`BlockCutter`).

    Raises:
        ConfigError: if the video has fewer than ``depth`` frames.
    """
    cutter = BlockCutter(depth, stride)
    blocks = cutter.push(video)
    cutter.close()
    return blocks


class MotionCrop:
    """The crop of every block that follows the motion, block after block.

    For each block, the moving pixels are those of the patch selection (``|last - first| >
    pixel``); the crop is first put where a ``size`` window holds the most of them, then
    centred on the moving pixels inside it (a figure cut in two by the frame's edge is followed
    by its larger part), within the frame. A block without a moving pixel keeps the previous
    block's crop (the first ones: the centre crop), also when the blocks come in several calls.

    Attributes:
        size: ``(h, w)`` of the crop.
        pixel: A pixel moves when ``|last - first|`` exceeds this in one of its channels.
    """

    def __init__(self, size: tuple[int, int], pixel: float) -> None:
        self.size = size
        self.pixel = pixel
        self._corner: np.ndarray | None = None  # (2,) the previous block's crop

    def corners(self, blocks: np.ndarray) -> np.ndarray:
        """Top-left corners ``(k, 2)`` of the crops of the next blocks ``(k, T, H, W, C)``.

        Raises:
            ConfigError: if the frames are smaller than ``size``.
        """
        height, width = blocks.shape[2:4]
        crop_h, crop_w = self.size
        if crop_h > height or crop_w > width:
            raise ConfigError(
                f"frame_size {[crop_h, crop_w]} exceeds the stored frames ({height}x{width}); "
                "raise data.prepare.size"
            )
        if self._corner is None:
            self._corner = np.array([(height - crop_h) // 2, (width - crop_w) // 2])
        corners = np.empty((len(blocks), 2), dtype=np.int64)
        for index, block in enumerate(blocks):
            moving = moving_pixels(block, len(block), self.pixel)[0]  # (H, W)
            count = box_sums(moving, crop_h, crop_w)  # (H - h + 1, W - w + 1)
            if count.max() > 0:
                top, left = np.unravel_index(count.argmax(), count.shape)
                ys, xs = np.nonzero(moving[top : top + crop_h, left : left + crop_w])
                centre = np.array([top + ys.mean(), left + xs.mean()])
                corner = np.round(centre - np.array([crop_h, crop_w]) / 2).astype(np.int64)
                self._corner = np.clip(corner, 0, [height - crop_h, width - crop_w])
            corners[index] = self._corner
        return corners

    def crop(self, blocks: np.ndarray) -> np.ndarray:
        """The next blocks ``(k, T, H, W, C)`` cropped where they move: ``(k, T, h, w, C)``.

        Raises:
            ConfigError: if the frames are smaller than ``size``.
        """
        crop_h, crop_w = self.size
        cropped = np.empty((*blocks.shape[:2], crop_h, crop_w, blocks.shape[4]), blocks.dtype)
        for row, (top, left) in enumerate(self.corners(blocks)):
            cropped[row] = blocks[row, :, top : top + crop_h, left : left + crop_w]
        return cropped
