"""Sparse auto-encoder features piece by piece: equal to the whole video's, for any pieces."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vidfer.cli import main
from vidfer.config import SparseAEConfig
from vidfer.data.synth import make_actions
from vidfer.errors import ConfigError
from vidfer.features.spacetime_patches import BlockCutter, MotionCrop, video_blocks
from vidfer.models.sparse_autoencoder import build_autoencoder
from vidfer.pipelines.sparse_ae import stream_codes, video_codes


def split(length: int, cuts: list[int]) -> list[slice]:
    """Consecutive slices covering ``range(length)``, cut at ``cuts`` (empty pieces included)."""
    bounds = [0, *sorted(min(c, length) for c in cuts), length]
    return [slice(a, b) for a, b in pairwise(bounds)]


def moving_video(seed: int, length: int, height: int, width: int, channels: int) -> np.ndarray:
    """Random video ``(L, H, W, C)`` in [0, 1] with still stretches (blocks without motion)."""
    rng = np.random.default_rng(seed)
    video = np.full((length, height, width, channels), 0.5, dtype=np.float32)
    for t in range(length):
        if rng.random() < 0.6:  # a moving bright square, else the previous frame
            y, x = rng.integers(0, height - 3), rng.integers(0, width - 3)
            video[t, y : y + 4, x : x + 4] = rng.random()
        elif t:
            video[t] = video[t - 1]
    return video


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    length=st.integers(1, 24),
    depth=st.integers(1, 5),
    stride=st.integers(1, 8),
    cuts=st.lists(st.integers(0, 24), max_size=6),
)
def test_blocks_and_tracked_crops_do_not_depend_on_the_pieces(
    seed: int, length: int, depth: int, stride: int, cuts: list[int]
):
    video = moving_video(seed, length, 14, 18, 2)
    cutter, motion = BlockCutter(depth, stride), MotionCrop((8, 10), pixel=0.1)
    blocks, corners = [], []
    for piece in split(length, cuts):
        found = cutter.push(video[piece])  # (k, T, H, W, C)
        blocks.append(found)
        corners.append(motion.corners(found))
    assert cutter.frames == length
    if length < depth:
        with pytest.raises(ConfigError, match="lower the patch depth"):
            cutter.close()
        return
    whole = video_blocks(video, depth, stride)  # (S, T, H, W, C)
    np.testing.assert_array_equal(cutter.close(), np.arange(0, length - depth + 1, stride))
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    np.testing.assert_array_equal(
        np.concatenate(corners), MotionCrop((8, 10), pixel=0.1).corners(whole)
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    length=st.integers(3, 20),
    depth=st.integers(2, 4),
    stride=st.sampled_from([None, 1, 2, 3, 5, 7]),
    track=st.booleans(),
    pool=st.sampled_from(["none", "max"]),
    code=st.sampled_from(["linear", "sparse"]),
    cuts=st.lists(st.integers(0, 20), max_size=5),
)
def test_stream_codes_equal_the_whole_videos(
    seed: int,
    length: int,
    depth: int,
    stride: int | None,
    track: bool,
    pool: str,
    code: str,
    cuts: list[int],
):
    section = SparseAEConfig.model_validate(
        {
            "patch": 4,
            "depth": depth,
            "codes": 5,
            "frame_size": [8, 8],
            "track": track,
            "block_stride": stride,
            "grayscale": bool(seed % 2),
            "pool": pool,
            "code": code,
        }
    )
    torch.manual_seed(seed)
    model = build_autoencoder(section).eval()
    frames = (moving_video(seed, length, 12, 14, 3) * 255).astype(np.uint8)  # (L, H, W, 3)
    if length < depth:
        with pytest.raises(ConfigError):
            stream_codes(model, [frames[piece] for piece in split(length, cuts)], section)
        return
    whole = video_codes(model, frames, section)  # (S, D)
    streamed, owner = stream_codes(model, (frames[piece] for piece in split(length, cuts)), section)
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-6)
    starts = np.arange(0, length - depth + 1, stride or depth)
    assert len(whole) == len(starts) and owner.shape == (length,)
    np.testing.assert_array_equal(starts[owner] <= np.arange(length), True)


@pytest.mark.slow
def test_predict_does_not_depend_on_the_chunk_frames(tmp_path: Path):
    manifest = make_actions(tmp_path / "actions", videos_per_class=3, size=32)
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sparse_ae": {
            "codes": 6,
            "patches_per_video": 10,
            "epochs": 1,
            "motion_share": 0.05,
            "frame_size": [16, 16],
            "track": True,
            "block_stride": 2,
        },
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "train": {"epochs": 1, "batch_size": 1},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run)]) == 0
    video = next(manifest.parent.rglob("*.mp4"))
    outputs = {}
    for chunk in (5, 10_000):
        out = tmp_path / f"chunk{chunk}"
        args = ["predict", str(video), "--run", str(run), "--out", str(out)]
        assert main([*args, "--chunk-frames", str(chunk)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        outputs[chunk] = summary, (out / "timeline.csv").read_text()
    (small, small_timeline), (large, large_timeline) = outputs[5], outputs[10_000]
    assert small["frames_decoded"] > 5 and small["frames_scored"] == small["frames_decoded"]
    assert small["label"] == large["label"]
    np.testing.assert_allclose(
        list(small["probabilities"].values()), list(large["probabilities"].values()), atol=1e-6
    )
    assert small_timeline == large_timeline
