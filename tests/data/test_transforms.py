"""Clip transforms: one set of random parameters for every frame of a clip."""

from __future__ import annotations

import numpy as np
import torch

from vidfer.config import TransformConfig
from vidfer.data.transforms import build_clip_transform, clip_to_video, video_to_clip


def still_video(frames: int = 6, size: int = 40) -> np.ndarray:
    """The same textured frame repeated: uint8 (T, H, W, 3)."""
    image = np.random.default_rng(0).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    return np.repeat(image[None], frames, axis=0)


AUGMENT = TransformConfig(
    size=24, crop_scale=(0.3, 0.9), flip=0.5, rotation=30, color_jitter=(0.4, 0.4, 0.4, 0.1)
)


def test_training_augmentation_is_identical_on_every_frame():
    transform = build_clip_transform(AUGMENT, train=True)
    outputs = []
    for seed in range(8):
        torch.manual_seed(seed)
        clip = transform(still_video())
        assert clip.shape == (3, 6, 24, 24) and clip.dtype == torch.float32
        for t in range(1, 6):
            assert torch.equal(clip[:, t], clip[:, 0])
        outputs.append(clip)
    # ... and the parameters do change from clip to clip.
    assert not all(torch.equal(outputs[0], other) for other in outputs[1:])


def test_eval_transform_resizes_center_crops_and_normalises():
    config = TransformConfig(size=20, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    frames = np.zeros((3, 30, 40, 3), dtype=np.uint8)
    frames[:, :, 20:] = 255  # right half white
    clip = build_clip_transform(config, train=False)(frames)
    assert clip.shape == (3, 3, 20, 20)
    assert torch.allclose(clip[:, :, :, 0], torch.tensor(-2.0))  # (0 - 0.5) / 0.25
    assert torch.allclose(clip[:, :, :, -1], torch.tensor(2.0))  # (1 - 0.5) / 0.25
    torch.manual_seed(0)
    again = build_clip_transform(config, train=False)(frames)
    assert torch.equal(clip, again)


def test_layout_conversions_are_inverse():
    video = torch.arange(2 * 4 * 3 * 5 * 6).reshape(2, 4, 3, 5, 6)  # (B, T, C, H, W)
    clip = video_to_clip(video)
    assert clip.shape == (2, 3, 4, 5, 6)  # (B, C, T, H, W)
    assert torch.equal(clip[1, 2, 3], video[1, 3, 2])
    assert torch.equal(clip_to_video(clip), video)


def test_read_only_memory_mapped_frames_are_accepted(tmp_path):
    path = tmp_path / "frames.npy"
    np.save(path, still_video())
    frames = np.load(path, mmap_mode="r")
    clip = build_clip_transform(AUGMENT, train=False)(frames)
    assert clip.shape == (3, 6, 24, 24)
