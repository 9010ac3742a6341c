"""Video-level aggregates of per-frame features (Kahou et al. 2015, Xu et al. 2017).

- :func:`signed_sqrt_l2`: signed square root then L2 normalisation (Xu: on VGG-Face fc6 and
  ResNet features before aggregation);
- :func:`mean_var`: the mean and the variance of the frames' features, concatenated (Xu);
- :func:`kbin_pool`: ``k``-bin average pooling into a fixed-length vector (Kahou, ``k = 15`` on the
  7 pre-softmax outputs: 105 values), videos shorter than ``k`` frames being locally repeated;
- :func:`concatenate`: several extractors' aggregates side by side.

Frame features are ``(T, D)`` arrays; every function returns a new array.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def signed_sqrt_l2(features: np.ndarray, axis: int = -1) -> np.ndarray:
    """``sign(x) sqrt(|x|)``, then scaled to unit L2 norm along ``axis`` (zero vectors stay 0)."""
    rooted = np.sign(features) * np.sqrt(np.abs(features))
    norm = np.linalg.norm(rooted, axis=axis, keepdims=True)
    return np.divide(rooted, norm, out=np.zeros_like(rooted, dtype=np.float64), where=norm > 0)


def mean_var(frames: np.ndarray) -> np.ndarray:
    """``[mean over frames, variance over frames]`` of ``(T, D)`` features: ``(2 D,)``.

    Raises:
        ValueError: on a video without frames.
    """
    if len(frames) == 0:
        raise ValueError("mean_var of a video without frames")
    return np.concatenate([frames.mean(axis=0), frames.var(axis=0)])


def kbin_indices(num_frames: int, k: int) -> list[np.ndarray]:
    """The frames averaged into each of the ``k`` bins.

    With ``T >= k`` frames the bins are ``k`` contiguous runs of ``T // k`` or ``T // k + 1``
    frames; with ``T < k`` bin ``i`` takes frame ``floor(i T / k)``: each frame is repeated in
    place ("locally repeated until sequence length is k").

    Raises:
        ValueError: if ``num_frames`` or ``k`` is below 1.
    """
    if num_frames < 1 or k < 1:
        raise ValueError("k-bin pooling needs at least one frame and one bin")
    if num_frames < k:
        return [np.array([i * num_frames // k]) for i in range(k)]
    return list(np.array_split(np.arange(num_frames), k))


def kbin_pool(frames: np.ndarray, k: int = 15) -> np.ndarray:
    """``k``-bin average pooling of ``(T, D)`` features: ``(k, D)``, flatten for a fixed vector."""
    return np.stack([frames[indices].mean(axis=0) for indices in kbin_indices(len(frames), k)])


def concatenate(aggregates: Sequence[np.ndarray]) -> np.ndarray:
    """Several extractors' video vectors, flattened and side by side."""
    return np.concatenate([np.ravel(a) for a in aggregates])
