"""Steps 1 and 2 of the activity modality (:mod:`vidfer.pipelines.activity`, Kahou et al. 2015,
§4): a synchrony auto-encoder (:mod:`vidfer.models.synchrony_autoencoder`) learned on the moving
blocks of the training videos, and a video's local descriptors: the synchrony amplitudes of its
moving grid blocks, computed piece by piece.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidfer.config import ActivityConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.prepared import PreparedDataset
from vidfer.features.spacetime_patches import (
    BlockCutter,
    grid_patches,
    video_blocks,
    video_volume,
)
from vidfer.features.sparse_codes import neighbourhood_centres, training_patches
from vidfer.models.synchrony_autoencoder import SynchronyAutoEncoder, train_synchrony_autoencoder


def frames_of_blocks(patches: np.ndarray, channels: int, depth: int) -> np.ndarray:
    """Flattened ``(..., C T M M)`` patches -> ``(..., T, C M M)``: one row per frame."""
    pixels = patches.shape[-1] // (channels * depth)  # M*M, explicit: there may be no patch
    shaped = patches.reshape(*patches.shape[:-1], channels, depth, pixels)  # (..., C, T, M*M)
    return np.ascontiguousarray(np.swapaxes(shaped, -3, -2)).reshape(
        *patches.shape[:-1], depth, channels * pixels
    )  # -> (..., T, C, M*M) -> (..., T, C*M*M)


def build_activity_autoencoder(settings: ActivityConfig, seed: int = 0) -> SynchronyAutoEncoder:
    """An untrained synchrony auto-encoder with the config's sizes."""
    channels = 1 if settings.grayscale else 3
    return SynchronyAutoEncoder(
        channels * settings.patch * settings.patch,
        settings.depth,
        settings.hidden,
        settings.components,
        settings.corruption,
        seed,
    )


def learn_activity_codes(
    data: PreparedDataset, items: list[VideoItem], settings: ActivityConfig, seed: int
) -> tuple[SynchronyAutoEncoder, list[dict[str, Any]]]:
    """Train the synchrony auto-encoder on the moving blocks of ``items``.

    Returns:
        The model and one metrics line per epoch (mean reconstruction error).
    """
    started = time.perf_counter()
    neighbourhoods = training_patches(data, items, settings, seed)  # (P, C, T', M', M')
    blocks = neighbourhood_centres(neighbourhoods, settings.patch, settings.depth)
    channels = blocks.shape[1]
    # (P, C, T, M, M) -> (P, C*T*M*M) -> (P, T, C*M*M)
    rows = frames_of_blocks(blocks.reshape(len(blocks), -1), channels, settings.depth)
    model = build_activity_autoencoder(settings, seed)
    losses = train_synchrony_autoencoder(
        model,
        rows,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=seed,
    )
    seconds = round(time.perf_counter() - started, 3)
    lines: list[dict[str, Any]] = [
        {"stage": "autoencoder", "ae_epoch": epoch + 1, "loss": loss, "blocks": len(rows)}
        for epoch, loss in enumerate(losses)
    ]
    lines[-1]["seconds"] = seconds
    return model.eval(), lines


def _grid_blocks(blocks: np.ndarray, settings: ActivityConfig) -> tuple[np.ndarray, np.ndarray]:
    """The grid blocks of space-time blocks ``(k, T, H, W, C)`` and their shares of moving pixels.

    A pixel moves when one of its channels changes by more than ``motion_pixel`` from the
    block's first frame to its last.

    Returns:
        ``(k, G, T, C M M)``: every grid block, one row per frame; ``(k, G)``: moving shares.
    """
    channels = blocks.shape[4]
    patches = grid_patches(blocks, settings.patch)  # (k, G, C*T*M*M)
    rows = frames_of_blocks(patches, channels, settings.depth)  # -> (k, G, T, C*M*M)
    change = np.abs(rows[:, :, -1] - rows[:, :, 0])  # (k, G, C*M*M)
    pixels = settings.patch * settings.patch
    # (k, G, C*M*M) -> (k, G, C, M*M) -> (k, G, M*M): a pixel moves when one of its channels does.
    moving = (change.reshape(*change.shape[:2], channels, pixels) > settings.motion_pixel).any(2)
    return rows, moving.mean(axis=2)  # (k, G, M*M) -> (k, G)


def _codes(model: SynchronyAutoEncoder, rows: np.ndarray) -> np.ndarray:
    """Synchrony amplitudes ``(B, K)`` of grid blocks ``(B, T, C M M)``."""
    return model.features(torch.from_numpy(rows)).numpy()


@dataclass(frozen=True)
class VideoDescriptors:
    """A video's local descriptors and where they are.

    Attributes:
        codes: ``(B, K)``: the codes of its moving grid blocks, block after block.
        blocks: ``(B,)``: the space-time block of each code.
        starts: ``(S,)``: the first frame of each space-time block.
        frames: Frames of the video.
    """

    codes: np.ndarray
    blocks: np.ndarray
    starts: np.ndarray
    frames: int


def stream_descriptors(
    model: SynchronyAutoEncoder, pieces: Iterable[np.ndarray], settings: ActivityConfig
) -> VideoDescriptors:
    """The codes of a video's moving grid blocks, its stored frames given piece by piece.

    A grid block moves as a training block does: more than ``motion_share`` of its pixels
    change by more than ``motion_pixel`` from its first to its last frame. Only a piece's
    blocks and the frames a later block needs are held besides the codes
    (:class:`~vidfer.features.spacetime_patches.BlockCutter`): the result does not depend on
    the pieces.

    Args:
        model: The trained auto-encoder.
        pieces: The video's stored frames ``(n, H, W, 3)``, in order.
        settings: The run's ``activity`` section.

    Raises:
        ConfigError: if the video has fewer frames than a block.
    """
    cutter = BlockCutter(settings.depth, settings.block_stride or settings.depth)
    codes, owners = [], []
    done = 0  # space-time blocks of the previous pieces
    for piece in pieces:
        volume = video_volume(piece, settings.frame_size, settings.grayscale)  # (n, h, w, C)
        rows, share = _grid_blocks(cutter.push(volume), settings)  # (k, G, T, D), (k, G)
        keep = share > settings.motion_share  # (k, G)
        codes.append(_codes(model, rows[keep]))  # (b, T, D) -> (b, K)
        owners.append(done + np.nonzero(keep)[0])  # (b,)
        done += len(rows)
    starts = cutter.close()
    return VideoDescriptors(np.concatenate(codes), np.concatenate(owners), starts, cutter.frames)


def descriptors(
    model: SynchronyAutoEncoder, data: PreparedDataset, item: VideoItem, settings: ActivityConfig
) -> np.ndarray:
    """One video's local descriptors ``(B, K)``: the codes of its moving grid blocks.

    :func:`stream_descriptors` of the video as one piece; a video with no moving block keeps
    its most moving ones, so that every video has a bag of words.
    """
    frames = data.store.frames(item.key)
    found = stream_descriptors(model, [frames], settings)
    if len(found.codes):
        return found.codes
    volume = video_volume(frames, settings.frame_size, settings.grayscale)  # (L, h, w, C)
    blocks = video_blocks(volume, settings.depth, settings.block_stride or settings.depth)
    rows, share = _grid_blocks(blocks, settings)  # (S, G, T, D), (S, G)
    return _codes(model, rows[share == share.max()])  # (B, T, D) -> (B, K)
