"""A bidirectional LSTM with a softmax at every time step (Graves and Schmidhuber, 2005).

Baccouche et al. (2012, §4.2) classify feature sequences with it: one hidden layer of LSTM cells
in each direction (5 per direction in all their experiments), fully connected to the inputs, and
a softmax output layer at every time step giving the class posteriors of that step. The video's
label comes from these outputs: here the mean over the real steps of the per-step log
posteriors (the normalised geometric mean of the posteriors), so that training on the video's
label trains every step's softmax.
"""

from __future__ import annotations

import torch
from torch import nn

from vidfer.models.recurrent import SequenceClassifier, _readout, _run_packed


class FramewiseBLSTM(SequenceClassifier):
    """Bidirectional LSTM, per-step softmax, video log-probabilities averaged over steps.

    Args:
        dim: Input channels D.
        num_classes: K.
        hidden: LSTM cells per direction (Baccouche et al.: 5).
    """

    def __init__(self, dim: int, num_classes: int, hidden: int = 5) -> None:
        super().__init__(2 * hidden, num_classes, "mean", 0.0)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Both directions' outputs ``(B, T, 2 hidden)`` (zeros after each row's real steps)."""
        return _run_packed(self.rnn, x, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Video log-probabilities ``(B, K)`` of sequences ``(B, T, D)``, prefix mask ``(B, T)``."""
        per_step = self.step_logits(x, mask).log_softmax(dim=-1)  # (B, T, K)
        return _readout(per_step, mask, "mean")
