"""The cascade's box operations without torchvision give torchvision's results."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import ops

from vidfer.faces.box_ops import batched_nms, crop_boxes, roi_align


def _boxes(generator: torch.Generator, count: int, extent: float) -> torch.Tensor:
    corner = torch.rand(count, 2, generator=generator) * extent  # (K, 2)
    side = torch.rand(count, 2, generator=generator) * extent / 2 + 0.5  # (K, 2)
    return torch.cat([corner, corner + side], dim=1)  # (K, 4)


def test_batched_nms_keeps_what_torchvision_keeps() -> None:
    generator = torch.Generator().manual_seed(0)
    for count, threshold in [(0, 0.5), (1, 0.5), (300, 0.5), (300, 0.7), (2000, 0.3)]:
        boxes = _boxes(generator, count, 60.0)
        scores = torch.rand(count, generator=generator)
        scores[: count // 10] = 0.5  # ties: the order among them may differ
        groups = torch.randint(0, 4, (count,), generator=generator)
        expected = ops.batched_nms(boxes, scores, groups, threshold)
        kept = batched_nms(boxes, scores, groups, threshold)
        assert torch.equal(kept.sort().values, expected.sort().values)
        assert torch.equal(scores[kept], scores[expected])  # best score first


def test_roi_align_samples_as_torchvision_does() -> None:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 37, 53, generator=generator) * 255  # (N, C, H, W)
    boxes = _boxes(generator, 200, 70.0) - 10  # some beyond the borders
    boxes[:5, 2:] = boxes[:5, :2]  # boxes without area
    boxes[5:10] *= 0.1  # tiny boxes
    frames = torch.randint(0, 3, (200, 1), generator=generator).float()
    rois = torch.cat([frames, boxes], dim=1)  # (R, 5)
    for size in (24, 48, 7):
        expected = ops.roi_align(images, rois, (size, size), sampling_ratio=-1, aligned=True)
        got = roi_align(images, rois, size)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_crops_of_uint8_frames_are_roi_align_of_the_float_frames() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 72, 96, 3), dtype=np.uint8)
    boxes = torch.tensor(
        [
            [30.3, 10.7, 50.2, 40.6],  # inside
            [-20.5, -10.0, 30.0, 40.5],  # over the top-left corner
            [80.0, 50.2, 110.7, 90.0],  # over the bottom-right corner
            [200.0, 10.0, 260.0, 70.0],  # outside: all zero
            [1.0, 1.0, 96.0, 72.0],  # the whole frame
            [-300.0, -200.0, 400.0, 300.0],  # far larger than the frame
        ]
    )
    owner = torch.tensor([0, 1, 0, 1, 1, 0])
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (2, 3, 72, 96)
    rois = torch.cat([owner[:, None].float(), boxes[:, :2] - 1, boxes[:, 2:]], dim=1)  # (6, 5)
    crops = crop_boxes(torch.from_numpy(frames), owner, boxes, 24)  # (6, 3, 24, 24)
    assert crops.dtype == torch.float32
    torch.testing.assert_close(crops, roi_align(images, rois, 24), atol=1e-3, rtol=1e-5)
    expected = ops.roi_align(images, rois, (24, 24), sampling_ratio=-1, aligned=True)
    torch.testing.assert_close(crops, expected, atol=1e-3, rtol=1e-5)
    assert not crops[3].any()
