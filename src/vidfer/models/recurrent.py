"""Recurrent video classifiers over per-frame features: IRNN (Kahou), LSTM, residual BiLSTM (Xu).

Every model takes a padded batch of feature sequences ``(B, T, D)`` and a mask ``(B, T)`` whose
True entries are a prefix of each row (the video's frames), and returns class logits ``(B, K)``
read out at the last real time step of each video (Kahou's "last time-step softmax") or averaged
over its real steps. Padded steps never influence a video's logits: sequences are packed
(:func:`torch.nn.utils.rnn.pack_padded_sequence`) so that the recurrence stops at each video's
length, and the backward direction of a bidirectional layer starts at its last real frame.

* :class:`IRNN` (Le et al., used by Kahou et al. §2.2): ``h_t = ReLU(W_in x_t + W_rec h_{t-1} + b)``
  with ``W_rec`` initialised to a scaled identity, biases to zero and ``W_in`` to small Gaussian
  values; Kahou trains it with plain SGD (lr 0.005) and gradient clipping at 1.0 (the run's
  ``optim`` and ``train.clip_grad``).
* :class:`LSTMClassifier`: a (stacked) LSTM with the same read-outs.
* :class:`ResidualBiLSTM` (Xu et al., after Chevalier's residual bidirectional LSTM): the inputs
  are projected to ``hidden`` channels, then each layer adds to its input the projection of the
  concatenated forward and backward LSTM outputs.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Literal, cast

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

Readout = Literal["last", "mean"]


def _lengths(mask: torch.Tensor) -> torch.Tensor:
    """Real steps per row of a prefix mask ``(B, T)``, on the CPU as packing wants."""
    return mask.sum(dim=1).cpu()


def _readout(outputs: torch.Tensor, mask: torch.Tensor, how: Readout) -> torch.Tensor:
    """``(B, T, H)`` outputs -> ``(B, H)``: the last real step, or the mean of the real steps."""
    if how == "mean":
        weights = mask.unsqueeze(-1).to(outputs.dtype)  # (B, T) -> (B, T, 1)
        return (outputs * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
    last = (mask.sum(dim=1) - 1).clamp(min=0)  # (B,)
    return outputs[torch.arange(len(outputs), device=outputs.device), last]


def _run_packed(rnn: nn.RNNBase, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Outputs ``(B, T, H * directions)`` of ``rnn`` over the real steps (zeros after them)."""
    packed = pack_padded_sequence(x, _lengths(mask), batch_first=True, enforce_sorted=False)
    outputs, _ = rnn(packed)
    padded, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])
    return padded


class SequenceClassifier(nn.Module, abc.ABC):
    """Base class: a recurrent encoder, a read-out and a linear classifier.

    Args:
        hidden: Channels of the read-out (the features a fusion network can take).
        num_classes: K.
        readout: ``last`` or ``mean``.
        dropout: Dropout before the classifier.
    """

    def __init__(self, hidden: int, num_classes: int, readout: Readout, dropout: float) -> None:
        super().__init__()
        self.readout = readout
        self.hidden = hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    @abc.abstractmethod
    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-step outputs ``(B, T, hidden)``."""

    def hidden_state(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The read-out ``(B, hidden)`` (Kahou's fusion input: the last step's activations)."""
        return _readout(self.encode(x, mask), mask, self.readout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of sequences ``(B, T, D)`` with prefix mask ``(B, T)``."""
        return self.classifier(self.dropout(self.hidden_state(x, mask)))

    def step_logits(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The classifier on every step's output: ``(B, T, K)`` (a per-frame timeline; with the
        ``last`` read-out and a unidirectional model, what it would answer after each frame)."""
        return self.classifier(self.encode(x, mask))


class IRNN(SequenceClassifier):
    """ReLU RNN with identity-initialised recurrence (Kahou et al.; Le et al. 2015).

    Args:
        dim: Input channels D.
        num_classes: K.
        hidden: Hidden units (Kahou: 200).
        identity_scale: ``W_rec`` starts as this times the identity.
        input_std: Standard deviation of the Gaussian initial ``W_in``.
        readout: ``last`` (Kahou) or ``mean``.
        dropout: Dropout before the classifier.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        hidden: int = 200,
        identity_scale: float = 1.0,
        input_std: float = 0.001,
        readout: Readout = "last",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(hidden, num_classes, readout, dropout)
        self.rnn = nn.RNN(dim, hidden, nonlinearity="relu", batch_first=True)
        weights = dict(self.rnn.named_parameters())
        with torch.no_grad():
            weights["weight_hh_l0"].copy_(identity_scale * torch.eye(hidden))
            weights["weight_ih_l0"].normal_(0.0, input_std)
            weights["bias_hh_l0"].zero_()
            weights["bias_ih_l0"].zero_()

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _run_packed(self.rnn, x, mask)


class _LSTMStack(SequenceClassifier):
    """Base of the LSTM classifiers: one constructor; each subclass gives its default width and
    depth and builds its layers.

    Args:
        dim: Input channels D.
        num_classes: K.
        hidden: Hidden units (None: the class's ``default_hidden``).
        layers: Layers (None: the class's ``default_layers``).
        readout: ``last`` or ``mean``.
        dropout: Dropout before the classifier (and wherever the subclass applies it).
    """

    default_hidden: ClassVar[int]
    default_layers: ClassVar[int]

    def __init__(
        self,
        dim: int,
        num_classes: int,
        hidden: int | None = None,
        layers: int | None = None,
        readout: Readout = "last",
        dropout: float = 0.0,
    ) -> None:
        hidden = self.default_hidden if hidden is None else hidden
        layers = self.default_layers if layers is None else layers
        super().__init__(hidden, num_classes, readout, dropout)
        self._build(dim, hidden, layers, dropout)

    @abc.abstractmethod
    def _build(self, dim: int, hidden: int, layers: int, dropout: float) -> None:
        """Create the recurrent layers (after the classifier, as the constructor's last step)."""


class LSTMClassifier(_LSTMStack):
    """A stacked LSTM over the frame features.

    Args:
        dim: Input channels D.
        num_classes: K.
        hidden: Hidden units per layer (default 128).
        layers: Stacked layers (default 1).
        readout: ``last`` or ``mean``.
        dropout: Dropout between layers and before the classifier.
    """

    default_hidden = 128
    default_layers = 1

    def _build(self, dim: int, hidden: int, layers: int, dropout: float) -> None:
        self.rnn = nn.LSTM(
            dim, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _run_packed(self.rnn, x, mask)


class ResidualBiLSTM(_LSTMStack):
    """Bidirectional LSTM layers with residual connections (Xu et al.).

    Args:
        dim: Input channels D.
        num_classes: K.
        hidden: Channels of the residual stream and of each LSTM direction (default 28, as Xu).
        layers: Residual bidirectional layers (default 2).
        readout: ``last`` (Xu: the last time step's softmax) or ``mean``.
        dropout: Dropout before the classifier.
    """

    default_hidden = 28
    default_layers = 2

    def _build(self, dim: int, hidden: int, layers: int, dropout: float) -> None:
        self.project = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.rnns = nn.ModuleList(
            nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True) for _ in range(layers)
        )
        self.merges = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in range(layers))

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        stream = self.project(x)  # (B, T, D) -> (B, T, H)
        for rnn, merge in zip(self.rnns, self.merges, strict=True):
            # (B, T, H) -> both directions (B, T, 2H) -> (B, T, H), added to the stream
            stream = stream + merge(_run_packed(cast(nn.LSTM, rnn), stream, mask))
        return stream * mask.unsqueeze(-1).to(stream.dtype)  # zero the padded steps


SEQUENCE_MODELS: dict[str, type[SequenceClassifier]] = {
    "irnn": IRNN,
    "lstm": LSTMClassifier,
    "bilstm": ResidualBiLSTM,
}
"""``frames.classifier`` name -> class; each takes ``(dim, num_classes, **params)``."""
