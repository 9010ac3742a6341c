"""Temporal poolings of score maps (B, K, T') -> (B, K)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models import build_pooling, mask_from_lengths
from vidfer.models.pooling import TemporalAdaptiveSoftmaxPool, TemporalPooling
from vidfer.registry import POOLINGS


def make_pooling(name: str, num_classes: int) -> TemporalPooling:
    """Pooling ``name`` with the options it needs for score maps of ``num_classes`` classes."""
    params: dict[str, object] = {"num_classes": num_classes} if name == "adaptive_softmax" else {}
    pooling = build_pooling(name, **params)
    assert isinstance(pooling, TemporalPooling)
    return pooling


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
    pooling = make_pooling(name, num_classes=5)
    scores = torch.randn(4, 5, 7)
    full = torch.ones(4, 7, dtype=torch.bool)
    torch.testing.assert_close(pooling(scores, full), pooling(scores))
    assert pooling(scores).shape == (4, 5)


@pytest.mark.parametrize("name", POOLINGS.names())
def test_every_pooling_passes_gradients_to_valid_steps_only(name: str) -> None:
    scores = torch.randn(2, 3, 4, requires_grad=True)
    mask = mask_from_lengths(torch.tensor([4, 2]), num_steps=4)
    make_pooling(name, num_classes=3)(scores, mask).sum().backward()
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


# --- softmax poolings, thesis eqs. (2.1) and (3.3) ---------------------------------------------


def test_softmax_with_gamma_zero_is_average_pooling() -> None:
    torch.testing.assert_close(
        build_pooling("softmax", gamma=0.0)(SCORES), build_pooling("avg")(SCORES)
    )


def test_softmax_with_a_huge_gamma_is_max_pooling() -> None:
    pooled = build_pooling("softmax", gamma=1e4)(SCORES)
    assert torch.isfinite(pooled).all()
    torch.testing.assert_close(pooled, build_pooling("max")(SCORES), atol=1e-4, rtol=0.0)


def test_softmax_with_gamma_one_by_hand() -> None:
    # exp(gamma * s) = (1, 2, 3) for s = (0, ln 2, ln 3): weights (1, 2, 3) / 6.
    scores = torch.tensor([[[0.0, math.log(2.0), math.log(3.0)]]])  # (1, 1, 3)
    expected = (2.0 * math.log(2.0) + 3.0 * math.log(3.0)) / 6.0
    pooling = build_pooling("softmax", gamma=1.0)
    assert isinstance(pooling, TemporalPooling)
    torch.testing.assert_close(pooling(scores), torch.tensor([[expected]]))
    torch.testing.assert_close(pooling.weights(scores), torch.tensor([[[1.0, 2.0, 3.0]]]) / 6.0)


def test_softmax_ignores_masked_steps() -> None:
    # The huge padded score would dominate the weights if it were not masked.
    scores = torch.tensor([[[0.0, math.log(3.0), 100.0]]])  # (1, 1, 3)
    mask = torch.tensor([[True, True, False]])
    pooled = build_pooling("softmax", gamma=1.0)(scores, mask)
    torch.testing.assert_close(pooled, torch.tensor([[0.75 * math.log(3.0)]]))


def test_adaptive_softmax_matches_eq_2_1_by_hand() -> None:
    pooling = build_pooling("adaptive_softmax", num_classes=2)
    assert isinstance(pooling, TemporalAdaptiveSoftmaxPool)
    with torch.no_grad():
        pooling.beta.copy_(torch.tensor([1.0, 2.0]))
    # Class 0, beta 1: exp(s) = (1, 3) -> weights (1/4, 3/4).
    # Class 1, beta 2: exp(2 s) = (1, 4) -> weights (1/5, 4/5).
    scores = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(2.0)]]])  # (1, 2, 2)
    expected = torch.tensor([[0.75 * math.log(3.0), 0.8 * math.log(2.0)]])
    torch.testing.assert_close(pooling(scores), expected)
    torch.testing.assert_close(pooling.weights(scores), torch.tensor([[[0.25, 0.75], [0.2, 0.8]]]))


def test_adaptive_softmax_beta_is_a_learned_parameter_per_class() -> None:
    pooling = build_pooling("adaptive_softmax", num_classes=3, beta_init=0.5)
    beta = dict(pooling.named_parameters())["beta"]
    assert isinstance(beta, nn.Parameter)
    torch.testing.assert_close(beta.detach(), torch.full((3,), 0.5))
    pooling(torch.randn(2, 3, 4)).sum().backward()
    assert beta.grad is not None
    assert beta.grad.shape == (3,)
    assert (beta.grad != 0).all()


def test_adaptive_softmax_defaults_to_the_thesis_initial_beta_of_one() -> None:
    pooling = build_pooling("adaptive_softmax", num_classes=2)
    torch.testing.assert_close(pooling(SCORES), build_pooling("softmax", gamma=1.0)(SCORES))


def test_adaptive_softmax_rejects_a_score_map_with_other_classes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_pooling("adaptive_softmax", num_classes=3)(SCORES)


@pytest.mark.parametrize("name", POOLINGS.names())
def test_weights_sum_to_one_on_valid_steps_and_give_the_pooled_scores(name: str) -> None:
    pooling = make_pooling(name, num_classes=3)
    scores = torch.randn(2, 3, 5)
    mask = mask_from_lengths(torch.tensor([5, 2]), num_steps=5)
    weights = pooling.weights(scores, mask)
    assert weights.shape == (2, 3, 5)
    assert (weights >= 0).all()
    assert (weights[1, :, 2:] == 0).all()
    torch.testing.assert_close(weights.sum(dim=2), torch.ones(2, 3))
    # Every pooling is a weighted sum with its weights (max: one-hot at the argmax).
    torch.testing.assert_close((weights * scores).sum(dim=2), pooling(scores, mask))


def test_max_weights_are_one_hot_at_the_argmax() -> None:
    weights = make_pooling("max", num_classes=2).weights(SCORES)
    expected = torch.tensor(
        [[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]]
    )
    torch.testing.assert_close(weights, expected)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5)),
    data=st.data(),
    gamma=st.floats(0.0, 20.0),
    extra=st.floats(0.0, 20.0),
)
def test_softmax_lies_between_avg_and_max_and_grows_with_gamma(
    shape: tuple[int, int, int], data: st.DataObject, gamma: float, extra: float
) -> None:
    batch, classes, steps = shape
    values = data.draw(
        st.lists(
            st.floats(-10.0, 10.0),
            min_size=batch * classes * steps,
            max_size=batch * classes * steps,
        )
    )
    scores = torch.tensor(values, dtype=torch.float64).reshape(batch, classes, steps)  # (B, K, T')
    lengths = data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    mask = mask_from_lengths(torch.tensor(lengths), num_steps=steps)  # (B, T')
    tol = 1e-9
    avg = build_pooling("avg")(scores, mask)
    low = build_pooling("softmax", gamma=gamma)(scores, mask)
    high = build_pooling("softmax", gamma=gamma + extra)(scores, mask)
    top = build_pooling("max")(scores, mask)
    assert (avg <= low + tol).all()
    assert (low <= high + tol).all()
    assert (high <= top + tol).all()


@pytest.mark.parametrize(
    ("name", "params", "option"),
    [
        ("softmax", {"temperature": 2.0}, "temperature"),
        ("softmax", {"gamma": -1.0}, "gamma"),
        ("softmax", {"gamma": math.inf}, "gamma"),
        ("adaptive_softmax", {}, "num_classes"),
        ("adaptive_softmax", {"num_classes": 0}, "num_classes"),
        ("adaptive_softmax", {"num_classes": 2, "gamma": 1.0}, "gamma"),
        ("adaptive_softmax", {"num_classes": 2, "beta_init": math.nan}, "beta_init"),
    ],
)
def test_invalid_softmax_options_are_config_errors(
    name: str, params: dict[str, object], option: str
) -> None:
    with pytest.raises(ConfigError, match=option):
        build_pooling(name, **params)
