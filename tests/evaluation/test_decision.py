"""Decision-level fusion: SCI against hand-computed values, eq. 6 weights, mean and max."""

from __future__ import annotations

import pytest
import torch

from vidfer.evaluation.decision import max_fusion, mean_fusion, sci, sci_fusion


def test_sci_hand_computed() -> None:
    assert float(sci(torch.full((4,), 0.25))) == pytest.approx(0.0)  # uniform
    assert float(sci(torch.tensor([0.0, 1.0, 0.0, 0.0]))) == pytest.approx(1.0)  # one-hot
    # N=4, max share 0.5: (4 * 0.5 - 1) / 3 = 1/3; scale does not matter.
    assert float(sci(torch.tensor([2.0, 1.0, 0.5, 0.5]))) == pytest.approx(1 / 3)
    batch = torch.tensor([[0.7, 0.1, 0.2], [1 / 3, 1 / 3, 1 / 3]])
    torch.testing.assert_close(sci(batch), torch.tensor([(3 * 0.7 - 1) / 2, 0.0]))
    with pytest.raises(ValueError, match="non-negative"):
        sci(torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match="all-zero"):
        sci(torch.zeros(3))


def test_sci_fusion_weights_views_by_their_sparsity() -> None:
    confident = torch.tensor([0.9, 0.05, 0.05])  # SCI 0.85
    unsure = torch.tensor([0.2, 0.5, 0.3])  # SCI 0.25
    views = torch.stack([confident, unsure])  # (C=2, N=3)
    w = torch.tensor([0.85, 0.25])
    expected = (w[:, None] * views).sum(dim=0) / w.sum()  # eq. 6
    torch.testing.assert_close(sci_fusion(views, dim=0), expected)
    assert int(sci_fusion(views, dim=0).argmax()) == 0 and int(mean_fusion(views, 0).argmax()) == 0
    # A uniform view gets no weight; all-uniform views fall back to the average.
    uniform = torch.full((3,), 1 / 3)
    torch.testing.assert_close(sci_fusion(torch.stack([unsure, uniform]), dim=0), unsure)
    torch.testing.assert_close(sci_fusion(torch.stack([uniform, uniform]), dim=0), uniform)
    # Batched: (videos, clips, views, classes) -> fuse views, then max over clips (eq. 7).
    scores = torch.rand(2, 5, 18, 4).softmax(dim=-1)
    fused = max_fusion(sci_fusion(scores, dim=2), dim=1)
    assert fused.shape == (2, 4)
    with pytest.raises(ValueError, match="not classes"):
        sci_fusion(scores, dim=-1)
