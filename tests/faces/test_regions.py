"""MTCNN's full cascade inside regions (``MTCNN.detect_near``) against the whole frame's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidfer.faces import FrameFaces
from vidfer.faces.regions import level_patches, pnet_cells

from helpers import pretrained_mtcnn as mtcnn
from helpers import sample_frames as decode


def _same_faces(a: list[FrameFaces], b: list[FrameFaces]) -> None:
    assert [len(f) for f in a] == [len(f) for f in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.boxes, y.boxes, atol=1e-3)
        np.testing.assert_allclose(x.landmarks, y.landmarks, atol=1e-3)
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-4)


@pytest.mark.parametrize(
    "name, index",
    [("carphone", slice(0, 120, 12)), ("bikes", [32, 40, 77, 104, 110, 120, 127, 134])],
)
def test_detect_near_gives_the_whole_frames_faces(name: str, index: object) -> None:
    frames = decode(name)[index]  # carphone's 47 px face; bikes: 640x272, faces of 22-79 px
    full = mtcnn().detect(frames)
    assert all(len(f) for f in full)
    boxes = [f.boxes for f in full]
    _same_faces(mtcnn().detect_near(frames, boxes), full)
    # With the keyframe detector's windows: only from half to twice the box side.
    _same_faces(mtcnn().detect_near(frames, boxes, smallest=0.5, largest=2.0), full)


def test_detect_near_at_the_frame_border() -> None:
    # Cut carphone's frames (to an odd 101x99) so that the face's box touches the left and top
    # edges: the regions and their pyramid patches reach the frame's (and the levels') border,
    # where P-Net's last cells see a partial max-pool window.
    frames = decode("carphone")[:120:20]
    corners = [f.boxes[0, :2].astype(int) + 2 for f in mtcnn().detect(frames)]  # x, y
    cut = np.stack([f[y : y + 99, x : x + 101] for f, (x, y) in zip(frames, corners, strict=True)])
    full = mtcnn().detect(cut)
    assert all(len(f) for f in full)
    assert all((f.boxes[0, 0:2] < 2).all() for f in full)  # at the edge
    _same_faces(mtcnn().detect_near(cut, [f.boxes for f in full]), full)
    # Mirrored: the faces touch the right edge (the rows and columns share their code).
    flipped = np.ascontiguousarray(cut[:, :, ::-1])
    full = mtcnn().detect(flipped)
    assert all(len(f) for f in full)
    assert all(f.boxes[0, 2] > 96 for f in full)  # within 5 px of it: the regions cross it
    _same_faces(mtcnn().detect_near(flipped, [f.boxes for f in full]), full)


@pytest.mark.parametrize("height, width", [(57, 83), (64, 90)])
@torch.inference_mode()
def test_level_patches_are_the_whole_levels_cells(height: int, width: int) -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, height, width) * 255
    regions = np.array([[0.0, 0.0, 20.0, 15.0], [50.0, 30.0, width, height], [10.0, 5, 40, 50]])
    sources = torch.tensor([0, 1, 1])
    pnet = mtcnn().pnet
    for size in [(int(height * s + 1), int(width * s + 1)) for s in (0.9, 0.63, 0.45, 0.3)]:
        level = F.interpolate(images, size=size, mode="area")  # (2, 3, h, w)
        near = level_patches(images, sources, regions, size)
        ph, pw = near.patches.shape[2:]
        assert near.valid.shape[1:] == (pnet_cells(ph), pnet_cells(pw))
        whole_prob = pnet((level - 127.5) * 0.0078125)[1]  # (2, h', w')
        prob = pnet((near.patches - 127.5) * 0.0078125)[1]  # (3, ph', pw')
        for r, frame in enumerate(sources.tolist()):
            cx, cy = near.origin[r].tolist()
            y, x = 2 * cy, 2 * cx  # the patch's first level pixel
            np.testing.assert_allclose(
                near.patches[r], level[frame, :, y : y + ph, x : x + pw], atol=1e-3
            )
            rows, cols = near.valid[r].nonzero().T
            assert len(rows)
            np.testing.assert_allclose(
                prob[r, rows, cols], whole_prob[frame, cy + rows, cx + cols], atol=1e-5
            )


def test_detect_near_without_boxes_and_with_the_wrong_count() -> None:
    frames = decode("carphone")[:2]
    assert all(len(f) == 0 for f in mtcnn().detect_near(frames, [np.zeros((0, 4))] * 2))
    with pytest.raises(ValueError, match="one box array per frame"):
        mtcnn().detect_near(frames, [np.zeros((0, 4))])
    with pytest.raises(ValueError, match="smallest < largest"):
        mtcnn().detect_near(frames, [np.zeros((0, 4))] * 2, smallest=2.0, largest=1.0)
