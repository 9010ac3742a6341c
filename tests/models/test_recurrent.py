"""Recurrent classifiers over padded feature sequences: initialisation, masking, read-outs."""

from __future__ import annotations

import pytest
import torch

from vidfer.models.recurrent import IRNN, SEQUENCE_MODELS, LSTMClassifier, ResidualBiLSTM


def test_irnn_starts_from_the_scaled_identity() -> None:
    model = IRNN(dim=10, num_classes=3, hidden=16, identity_scale=0.5)
    torch.testing.assert_close(model.rnn.weight_hh_l0, 0.5 * torch.eye(16))
    assert not model.rnn.bias_hh_l0.any() and not model.rnn.bias_ih_l0.any()
    assert model.rnn.weight_ih_l0.std() < 0.01
    assert model.rnn.nonlinearity == "relu"


@pytest.mark.parametrize("name", sorted(SEQUENCE_MODELS))
@pytest.mark.parametrize("readout", ["last", "mean"])
def test_padding_never_changes_a_video_logits(name: str, readout: str) -> None:
    """A video scored alone equals the same video padded inside a batch of longer ones."""
    torch.manual_seed(0)
    model = SEQUENCE_MODELS[name](8, 4, readout=readout).eval()
    video = torch.randn(1, 5, 8)
    alone = model(video, torch.ones(1, 5, dtype=torch.bool))
    batch = torch.randn(3, 9, 8)
    batch[1, :5] = video[0]
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 5:] = False
    batch[1, 5:] = 1e3  # garbage in the padding must not leak
    together = model(batch, mask)
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-5)
    assert together.shape == (3, 4)


def test_last_readout_depends_on_order_but_mean_bilstm_sees_every_step() -> None:
    torch.manual_seed(1)
    x = torch.randn(1, 6, 8)
    mask = torch.ones(1, 6, dtype=torch.bool)
    for model in (IRNN(8, 3, hidden=12), LSTMClassifier(8, 3), ResidualBiLSTM(8, 3)):
        model.eval()
        assert not torch.allclose(model(x, mask), model(x.flip(1), mask))
    assert ResidualBiLSTM(8, 3, hidden=28, layers=2).hidden_state(x, mask).shape == (1, 28)


def test_models_learn_a_temporal_order_task() -> None:
    """Class = whether the bump comes in the first or second half: order matters."""
    torch.manual_seed(0)
    n, steps = 64, 12
    labels = torch.arange(n) % 2
    x = 0.1 * torch.randn(n, steps, 4)
    for i, label in enumerate(labels.tolist()):
        x[i, 2 + 6 * label, 0] += 3.0
    mask = torch.ones(n, steps, dtype=torch.bool)
    for name in ("irnn", "bilstm"):
        model = SEQUENCE_MODELS[name](4, 2)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(150):
            loss = torch.nn.functional.cross_entropy(model(x, mask), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        accuracy = (model.eval()(x, mask).argmax(dim=1) == labels).float().mean()
        assert accuracy > 0.95, name
