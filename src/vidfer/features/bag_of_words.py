"""Steps 3 and 4 of the activity modality (:mod:`vidfer.pipelines.activity`): a vocabulary of
words by k-means over the training videos' descriptors, and a video as its normalised histogram
of words (a bag of words: the order is lost).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from vidfer.config import ActivityConfig
from vidfer.errors import ConfigError


def fit_vocabulary(per_video: list[np.ndarray], settings: ActivityConfig, seed: int) -> np.ndarray:
    """k-means centres ``(words, N)`` of at most ``settings.descriptors`` training descriptors.

    Raises:
        ConfigError: if there are fewer descriptors than words.
    """
    rows = np.concatenate(per_video)
    if len(rows) < settings.words:
        raise ConfigError(
            f"activity.words {settings.words}: the training videos give only {len(rows)} "
            "descriptors; lower activity.words"
        )
    rng = np.random.default_rng(seed)
    if len(rows) > settings.descriptors:
        rows = rows[rng.choice(len(rows), settings.descriptors, replace=False)]
    kmeans = KMeans(n_clusters=settings.words, n_init=3, random_state=seed).fit(rows)
    return np.asarray(kmeans.cluster_centers_, dtype=np.float32)


def nearest_words(rows: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """The word ``(P,)`` of ``(W, N)`` nearest to each descriptor of ``(P, N)``."""
    # Squared distances without the (P, W, N) difference tensor: |r|^2 - 2 r.c + |c|^2.
    distances = (
        (rows**2).sum(axis=1, keepdims=True)
        - 2.0 * rows @ vocabulary.T
        + (vocabulary**2).sum(axis=1)
    )  # (P, W)
    return distances.argmin(axis=1)


def bag_of_words(rows: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """Share of a video's descriptors ``(P, N)`` nearest to each word of ``(W, N)``: ``(W,)``."""
    counts = np.bincount(nearest_words(rows, vocabulary), minlength=len(vocabulary))
    return (counts / max(len(rows), 1)).astype(np.float32)
