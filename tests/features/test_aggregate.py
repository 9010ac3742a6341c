"""Aggregation of per-frame features: SSR + L2, mean/variance, k-bin pooling."""

from __future__ import annotations

import numpy as np
import pytest

from vidfer.features.aggregate import (
    concatenate,
    kbin_indices,
    kbin_pool,
    mean_var,
    signed_sqrt_l2,
)


def test_signed_sqrt_l2_has_unit_norm_and_keeps_signs() -> None:
    features = np.random.default_rng(0).normal(size=(6, 10)) * 5
    out = signed_sqrt_l2(features)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)
    assert np.array_equal(np.sign(out), np.sign(features))
    np.testing.assert_allclose(
        signed_sqrt_l2(np.array([4.0, -9.0])), np.array([2.0, -3.0]) / 13**0.5
    )
    assert np.array_equal(signed_sqrt_l2(np.zeros((2, 3))), np.zeros((2, 3)))


def test_kbin_pooling_of_a_short_video_repeats_frames_locally() -> None:
    # 7 frames into 15 bins: bin i takes frame floor(7 i / 15): frame 0 three times, the others
    # twice, each in place.
    assert [int(b[0]) for b in kbin_indices(7, 15)] == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    frames = np.arange(7, dtype=float)[:, None] * [1.0, 10.0]  # (7, 2)
    pooled = kbin_pool(frames, 15)
    assert pooled.shape == (15, 2)
    np.testing.assert_array_equal(pooled[:, 0], [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6])


def test_kbin_pooling_of_a_long_video_averages_contiguous_runs() -> None:
    frames = np.arange(32, dtype=float)[:, None]  # (32, 1)
    bins = kbin_indices(32, 15)
    assert [len(b) for b in bins] == [3, 3] + [2] * 13
    assert np.array_equal(np.concatenate(bins), np.arange(32))
    np.testing.assert_allclose(kbin_pool(frames, 15)[:2, 0], [1.0, 4.0])
    with pytest.raises(ValueError):
        kbin_indices(0, 15)


def test_mean_var_and_concatenation() -> None:
    frames = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(mean_var(frames), [2.0, 4.0, 1.0, 4.0])
    assert concatenate([mean_var(frames), kbin_pool(frames, 3)]).shape == (4 + 6,)
    with pytest.raises(ValueError):
        mean_var(np.zeros((0, 2)))
