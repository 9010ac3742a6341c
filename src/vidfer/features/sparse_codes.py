"""Sparse codes of Baccouche et al.'s (2012) auto-encoder: what its two systems share.

The sparse auto-encoder + BLSTM (:mod:`vidfer.pipelines.sparse_ae`) and Kahou et al.'s
activity modality (:mod:`vidfer.pipelines.activity`) both learn the auto-encoder on the
moving patches of their training videos (:func:`learn_autoencoder`, which also writes
``basis.png`` and ``sparsity.json`` into the run), then encode every video block by block
(:func:`grid_codes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfer.config import ActivityConfig, AutoEncoderConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.prepared import PreparedDataset
from vidfer.errors import ConfigError
from vidfer.features.spacetime_patches import (
    BlockCutter,
    MotionCrop,
    grid_patches,
    sample_neighbourhoods,
    video_volume,
)
from vidfer.io.atomic import atomic_write_json
from vidfer.models.sparse_autoencoder import (
    ACTIVE_LEVEL,
    CodeKind,
    SparseAutoEncoder,
    train_autoencoder,
)
from vidfer.viz.basis import plot_basis


def training_patches(
    data: PreparedDataset,
    items: list[VideoItem],
    settings: AutoEncoderConfig | ActivityConfig,
    seed: int,
) -> np.ndarray:
    """The motion-selected training neighbourhoods of ``items``, ``(P, C, T', M', M')``.

    Raises:
        ConfigError: if no patch moves enough.
    """
    rng = np.random.default_rng(seed)
    found = [
        sample_neighbourhoods(
            video_volume(data.store.frames(item.key), settings.frame_size, settings.grayscale),
            settings.patch,
            settings.depth,
            settings.motion_pixel,
            settings.motion_share,
            settings.patches_per_video,
            rng,
        )
        for item in items
    ]
    patches = np.concatenate(found)
    if not len(patches):
        raise ConfigError(
            f"no training patch has more than {settings.motion_share:.0%} moving pixels; lower "
            "the motion_share or motion_pixel option of the sparse_ae / activity section"
        )
    return patches


class BlockGrids:
    """The raw grid patches of a video's blocks, as its stored frames arrive piece by piece.

    The blocks (:class:`~vidfer.features.spacetime_patches.BlockCutter`) are cut from the
    ``frame_size`` centre crop, or, with ``track``, from a crop of that size that follows the
    motion block by block (:class:`~vidfer.features.spacetime_patches.MotionCrop`). The frames a
    later block needs and the last crop carry over between pieces: any pieces of a video give
    the patches of the whole video.

    Attributes:
        settings: The auto-encoder section.
        cutter: Cuts the blocks; :meth:`BlockCutter.close` gives their first frames.
    """

    def __init__(self, settings: AutoEncoderConfig) -> None:
        self.settings = settings
        self.cutter = BlockCutter(settings.depth, settings.block_stride or settings.depth)
        self._motion: MotionCrop | None = None
        if settings.track:
            assert settings.frame_size is not None  # the section's validator checks it
            self._motion = MotionCrop(settings.frame_size, settings.motion_pixel)

    def push(self, frames: np.ndarray) -> np.ndarray:
        """The patches ``(k, G, D)`` of the blocks that stored frames ``(n, H, W, 3)`` complete."""
        settings = self.settings
        if self._motion is None:
            volume = video_volume(frames, settings.frame_size, settings.grayscale)  # (n, h, w, C)
            blocks = self.cutter.push(volume)  # (k, T, h, w, C)
        else:
            volume = video_volume(frames, None, settings.grayscale)  # (n, H, W, C)
            whole = self.cutter.push(volume)  # (k, T, H, W, C)
            blocks = self._motion.crop(whole)  # -> (k, T, h, w, C)
        return grid_patches(blocks, settings.patch)  # -> (k, G, D)


def block_grid(frames: np.ndarray, settings: AutoEncoderConfig) -> np.ndarray:
    """The raw patches ``(S, G, D)`` of the G grid positions of each of a video's S blocks.

    The whole video as one piece of :class:`BlockGrids`.

    Raises:
        ConfigError: if the video has fewer frames than a block.
    """
    grids = BlockGrids(settings)
    patches = grids.push(frames)
    grids.cutter.close()
    return patches


@torch.no_grad()
def patch_codes(model: SparseAutoEncoder, patches: np.ndarray, code: CodeKind) -> np.ndarray:
    """The codes ``(..., N)`` of raw patches ``(..., D)`` (:meth:`SparseAutoEncoder.features`)."""
    return model.features(torch.from_numpy(patches), code).numpy()


def grid_codes(
    model: SparseAutoEncoder,
    frames: np.ndarray,
    settings: AutoEncoderConfig,
    code: CodeKind | None = None,
) -> np.ndarray:
    """The codes ``(S, G, N)`` of the G grid patches of each of a video's S blocks.

    Args:
        model: The trained auto-encoder.
        frames: The video's stored frames.
        settings: The auto-encoder section (the blocks: see :func:`block_grid`).
        code: ``sparse`` or ``linear`` (see :meth:`SparseAutoEncoder.features`); None takes
            ``settings.code``.
    """
    kind = settings.code if code is None else code
    return patch_codes(model, block_grid(frames, settings), kind)  # (S, G, D) -> (S, G, N)


def neighbourhood_centres(neighbourhoods: np.ndarray, patch: int, depth: int) -> np.ndarray:
    """The unshifted patches ``(P, C, T, M, M)`` of neighbourhoods ``(P, C, T', M', M')``."""
    spatial = (neighbourhoods.shape[3] - patch) // 2
    temporal = (neighbourhoods.shape[2] - depth) // 2
    return np.ascontiguousarray(
        neighbourhoods[
            :,
            :,
            temporal : temporal + depth,
            spatial : spatial + patch,
            spatial : spatial + patch,
        ]
    )


def active_units(codes: np.ndarray) -> dict[str, float]:
    """Active code units per patch of sparse codes ``(P, N)``: mean, max and mean fraction."""
    active = (codes > ACTIVE_LEVEL).sum(axis=1)
    return {
        "patches": len(codes),
        "mean_active": float(active.mean()),
        "max_active": int(active.max()),
        "mean_fraction": float(active.mean() / codes.shape[1]),
    }


@torch.no_grad()
def sparsity_report(
    model: SparseAutoEncoder,
    neighbourhoods: np.ndarray,
    video_patch_codes: np.ndarray,
    lines: list[dict[str, Any]],
) -> dict[str, Any]:
    """``sparsity.json``: active units of the trained (fixed-gain) codes.

    On the (unshifted) training patches, on every grid patch of the training videos, and the
    online counts of each training epoch.
    """
    centres = neighbourhood_centres(neighbourhoods, model.patch, model.depth)  # (P, C, T, M, M)
    flat = torch.from_numpy(centres).flatten(1)  # -> (P, C*T*M*M) raw
    patch_codes = model.features(flat)  # (P, N)
    return {
        "codes": model.codes,
        "paper_limit": model.codes / 8,
        "active_level": ACTIVE_LEVEL,
        "training_patches": active_units(patch_codes.numpy()),
        "video_patches": active_units(video_patch_codes),
        "online": [
            {"epoch": line["ae_epoch"], "mean_active": line["active_units"]} for line in lines
        ],
    }


def learn_autoencoder(
    data: PreparedDataset,
    items: list[VideoItem],
    settings: AutoEncoderConfig,
    seed: int,
    folder: Path,
) -> tuple[SparseAutoEncoder, list[dict[str, Any]]]:
    """Train the auto-encoder on the moving patches of ``items``; write its basis and sparsity.

    Returns:
        The trained (fixed-gain) model and one metrics line per auto-encoder epoch, the last
        with the mean number of active units over every grid patch of the training videos.

    Raises:
        ConfigError: if no patch moves enough.
    """
    neighbourhoods = training_patches(data, items, settings, seed)
    model, lines = train_autoencoder(neighbourhoods, settings, seed)
    plot_basis(model.basis().detach().numpy(), folder / "basis.png")
    video_patch_codes = np.concatenate(
        [grid_codes(model, data.store.frames(item.key), settings, "sparse") for item in items]
    )  # (sum S, G, N)
    sparsity = sparsity_report(
        model, neighbourhoods, video_patch_codes.reshape(-1, model.codes), lines
    )
    atomic_write_json(folder / "sparsity.json", sparsity)
    lines[-1]["fixed_gain_active_units"] = sparsity["video_patches"]["mean_active"]
    return model, lines
