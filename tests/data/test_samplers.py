"""Table-driven tests of the clip samplers' index arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from vidfer.data.sampler_zoo import build_sampler
from vidfer.data.samplers import clip_indices
from vidfer.errors import ConfigError
from vidfer.registry import SAMPLERS


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    ("start", "clip_len", "num_frames", "step", "expected"),
    [
        (0, 4, 10, 1, [0, 1, 2, 3]),
        (6, 4, 10, 1, [6, 7, 8, 9]),
        (-2, 6, 3, 1, [0, 0, 0, 1, 2, 2]),  # short video centred, edges repeated
        (1, 3, 10, 4, [1, 5, 9]),
        (5, 3, 10, 4, [5, 9, 9]),
        (0, 1, 1, 1, [0]),
    ],
)
def test_clip_indices(start, clip_len, num_frames, step, expected):
    assert clip_indices(start, clip_len, num_frames, step).tolist() == expected


@pytest.mark.parametrize(
    ("name", "params", "num_frames", "expected"),
    [
        ("center", {"clip_len": 4}, 10, [[3, 4, 5, 6]]),
        ("center", {"clip_len": 4}, 4, [[0, 1, 2, 3]]),
        ("center", {"clip_len": 6}, 3, [[0, 0, 0, 1, 2, 2]]),
        ("center", {"clip_len": 3, "stride": 2}, 9, [[2, 4, 6]]),
        ("every_window", {"clip_len": 4}, 6, [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]),
        ("every_window", {"clip_len": 4, "window_step": 2}, 7, [[0, 1, 2, 3], [2, 3, 4, 5]]),
        ("every_window", {"clip_len": 4}, 2, [[0, 0, 1, 1]]),
        ("temporal_resize", {"clip_len": 4}, 8, [[1, 3, 5, 7]]),
        ("temporal_resize", {"clip_len": 4}, 2, [[0, 0, 1, 1]]),
        ("temporal_resize", {"clip_len": 3}, 3, [[0, 1, 2]]),
        (
            "strided",
            {"clip_len": 2, "stride": 3, "num_clips": 2, "random": False},
            10,
            [[1, 4], [5, 8]],
        ),
        ("strided", {"clip_len": 3, "stride": 5, "num_clips": 2}, 4, [[0, 2, 3], [0, 2, 3]]),
        ("uniform", {"clip_len": 5}, 3, [[0, 0, 1, 2, 2]]),
    ],
)
def test_deterministic_samplers(name, params, num_frames, expected):
    sampler = build_sampler(name, **params)
    assert sampler.sample(0, num_frames, rng()).tolist() == expected


@pytest.mark.parametrize(("clip_len", "stride", "num_frames"), [(4, 1, 10), (3, 2, 9), (16, 1, 16)])
def test_uniform_covers_every_valid_start(clip_len, stride, num_frames):
    sampler = build_sampler("uniform", clip_len=clip_len, stride=stride)
    span = (clip_len - 1) * stride + 1
    starts = {int(sampler.sample(0, num_frames, rng(seed))[0, 0]) for seed in range(400)}
    assert starts == set(range(num_frames - span + 1))
    clip = sampler.sample(0, num_frames, rng(1))[0]
    assert np.all(np.diff(clip) == stride)


def test_random_samplers_use_only_the_given_generator():
    sampler = build_sampler("uniform", clip_len=4)
    np.random.seed(1)
    first = sampler.sample(0, 100, rng(7))
    np.random.seed(2)
    assert np.array_equal(first, sampler.sample(0, 100, rng(7)))
    assert not np.array_equal(first, sampler.sample(0, 100, rng(8)))


def test_strided_random_starts_stay_in_their_share():
    sampler = build_sampler("strided", clip_len=4, stride=2, num_clips=3)
    for seed in range(50):
        clips = sampler.sample(0, 40, rng(seed))
        assert clips.shape == (3, 4)
        assert clips.max() <= 39
        assert np.all(np.diff(clips[:, 0]) > 0)  # clips in temporal order


def test_unknown_sampler_lists_known_names():
    with pytest.raises(ConfigError, match=r"known: .*uniform"):
        build_sampler("nope")


def test_registry_holds_the_core_samplers():
    assert {"uniform", "center", "every_window", "temporal_resize", "strided"} <= set(SAMPLERS)
