"""The learned basis of a sparse auto-encoder as image strips (Baccouche et al., Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from vidfer.viz.plots import save_figure


def basis_mosaic(basis: np.ndarray, columns: int = 8, gap: int = 1) -> np.ndarray:
    """One gray image of every basis element, each a strip of its T frames side by side.

    Args:
        basis: ``(N, C, T, M, M)`` decoder responses to one-hot codes (C = 1 gray, 3 colour).
        columns: Strips per row of the mosaic.
        gap: Pixels between frames and between strips (drawn white).

    Returns:
        ``(rows (M + 2 gap), columns (T (M + gap) + gap), C)`` values in ``[0, 1]``; each
        element is scaled to its own range.
    """
    count, channels, depth, size = basis.shape[:4]
    low = basis.min(axis=(1, 2, 3, 4), keepdims=True)
    span = np.maximum(basis.max(axis=(1, 2, 3, 4), keepdims=True) - low, 1e-12)
    scaled = ((basis - low) / span).transpose(0, 2, 3, 4, 1)  # -> (N, T, M, M, C) in [0, 1]
    rows = -(-count // columns)
    cell_h, cell_w = size + 2 * gap, depth * (size + gap) + gap
    mosaic = np.ones((rows * cell_h, columns * cell_w, channels))
    for index, element in enumerate(scaled):
        top, left = (index // columns) * cell_h + gap, (index % columns) * cell_w + gap
        for frame, image in enumerate(element):
            x = left + frame * (size + gap)
            mosaic[top : top + size, x : x + size] = image
    return mosaic


def plot_basis(basis: np.ndarray, path: Path, columns: int = 8) -> None:
    """Write the mosaic of :func:`basis_mosaic` as a PNG, one strip per code unit."""
    mosaic = basis_mosaic(basis, columns)
    height, width, channels = mosaic.shape
    figure, axis = plt.subplots(figsize=(max(4.0, width / 18), max(2.0, height / 18 + 0.6)))
    image = mosaic[..., 0] if channels == 1 else mosaic  # gray (H, W) or colour (H, W, 3)
    axis.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    count, depth = basis.shape[0], basis.shape[2]
    axis.set_title(f"decoder basis: {count} elements, {depth} frames each (left to right)")
    axis.axis("off")
    save_figure(figure, path)
