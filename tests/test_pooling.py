"""Temporal poolings of score maps (B, K, T') -> (B, K)."""

from __future__ import annotations

import pytest
import torch

from vidfer.errors import ConfigError
from vidfer.models import build_pooling, mask_from_lengths
from vidfer.registry import POOLINGS

# Two videos, two classes, three steps.
SCORES = torch.tensor(
    [
        [[1.0, 2.0, 6.0], [-1.0, -3.0, -2.0]],
        [[0.0, 4.0, 2.0], [5.0, 1.0, 0.0]],
    ]
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("avg", [[3.0, -2.0], [2.0, 2.0]]),
        ("max", [[6.0, -1.0], [4.0, 5.0]]),
    ],
)
def test_pooling_values(name: str, expected: list[list[float]]) -> None:
    pooled = build_pooling(name)(SCORES)
    torch.testing.assert_close(pooled, torch.tensor(expected))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Video 0 keeps 2 steps, video 1 keeps 1: the padded steps must not count.
        ("avg", [[1.5, -2.0], [0.0, 5.0]]),
        ("max", [[2.0, -1.0], [0.0, 5.0]]),
    ],
)
def test_masked_pooling_ignores_padded_steps(name: str, expected: list[list[float]]) -> None:
    mask = mask_from_lengths(torch.tensor([2, 1]), num_steps=3)
    assert mask.tolist() == [[True, True, False], [True, False, False]]
    pooled = build_pooling(name)(SCORES, mask)
    torch.testing.assert_close(pooled, torch.tensor(expected))


@pytest.mark.parametrize("name", POOLINGS.names())
def test_every_pooling_with_a_full_mask_equals_no_mask(name: str) -> None:
    pooling = build_pooling(name)
    scores = torch.randn(4, 5, 7)
    full = torch.ones(4, 7, dtype=torch.bool)
    torch.testing.assert_close(pooling(scores, full), pooling(scores))
    assert pooling(scores).shape == (4, 5)


@pytest.mark.parametrize("name", POOLINGS.names())
def test_every_pooling_passes_gradients_to_valid_steps_only(name: str) -> None:
    scores = torch.randn(2, 3, 4, requires_grad=True)
    mask = mask_from_lengths(torch.tensor([4, 2]), num_steps=4)
    build_pooling(name)(scores, mask).sum().backward()
    assert scores.grad is not None
    assert (scores.grad[1, :, 2:] == 0).all()


def test_unknown_pooling_lists_the_known_names() -> None:
    with pytest.raises(ConfigError, match="'median'") as error:
        build_pooling("median")
    assert all(name in str(error.value) for name in ("avg", "max"))


def test_unknown_pooling_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        build_pooling("avg", temperature=2.0)


@pytest.mark.parametrize(
    ("scores", "mask", "message"),
    [
        (torch.zeros(2, 3), None, "score map"),
        (torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), "mask"),
        (torch.zeros(2, 3, 4), torch.ones(2, 4), "mask"),
        (torch.zeros(2, 3, 4), torch.tensor([[True] * 4, [False] * 4]), "valid step"),
    ],
)
def test_invalid_inputs_are_rejected(
    scores: torch.Tensor, mask: torch.Tensor | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_pooling("avg")(scores, mask)
