"""A character LSTM language model over the acoustic model's vocabulary.

`forward` scores whole sentences at once (teacher forcing, for training and
evaluation); `initial_state` / `score` / `reorder` are the search's `LanguageModel`
protocol, one character per call for a batch of hypotheses. Both run the same
layers, so a sentence gets the same log-probability either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from asr.text import Vocabulary

_VOCAB = Vocabulary.default()


@dataclass(frozen=True)
class LMConfig:
    """Embedding size, LSTM layers and units, dropout (on the embeddings, between layers and
    before the output layer). Special token ids follow `asr.text.Vocabulary`."""

    embedding_dim: int = 64
    units: int = 512
    layers: int = 2
    dropout: float = 0.1
    vocab_size: int = len(_VOCAB)

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.units < 1 or not 1 <= self.layers <= 8:
            raise ValueError("embedding_dim and units must be positive, layers 1..8")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.vocab_size <= _VOCAB.eos_id:
            raise ValueError(f"vocab_size must exceed the special token ids, got {self.vocab_size}")


class LMState(NamedTuple):
    """The LSTM's state after the characters seen so far: hidden and cell, each (layers, N, units)."""

    hidden: torch.Tensor
    cell: torch.Tensor


class CharLM(nn.Module):
    """Embedding -> LSTM layers -> linear output over the vocabulary.

    Blank, pad and sos get log-probability -inf: the model never predicts them.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.units,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.output = nn.Linear(config.units, config.vocab_size)
        forbidden = torch.zeros(config.vocab_size, dtype=torch.bool)
        forbidden[[_VOCAB.blank_id, _VOCAB.pad_id, _VOCAB.sos_id]] = True
        self.register_buffer("forbidden", forbidden, persistent=False)

    def _log_probs(self, inputs: torch.Tensor, state: LMState | None) -> tuple[torch.Tensor, LMState]:
        """(N, L) token ids -> log-probabilities (N, L, vocab) of each next token, the state after them."""
        embedded = self.dropout(self.embedding(inputs))  # (N, L, E)
        outputs, (hidden, cell) = self.lstm(embedded, None if state is None else tuple(state))  # (N, L, units)
        logits = self.output(self.dropout(outputs)).float().masked_fill(self.forbidden, float("-inf"))
        return torch.log_softmax(logits, dim=-1), LMState(hidden, cell)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: (B, L) inputs (<sos> + characters), (B, L) targets (characters + <eos>),
        (B,) lengths (characters + 1) -> log-probability (B, L) of each target, 0 at padding.

        Padding after an input never changes the scores before it (the LSTM runs left to right).
        """
        log_probs, _ = self._log_probs(inputs, None)
        valid = torch.arange(inputs.shape[1], device=inputs.device)[None, :] < lengths[:, None]  # (B, L)
        picked = log_probs.gather(2, targets[..., None])[..., 0]  # (B, L)
        return picked.masked_fill(~valid, 0.0)

    def initial_state(self, batch: int, device: torch.device) -> LMState:
        """The state before any character: zeros for `batch` hypotheses on `device`."""
        zeros = torch.zeros(self.config.layers, batch, self.config.units, device=device)
        return LMState(zeros, zeros.clone())

    def score(self, state: LMState, tokens: torch.Tensor) -> tuple[torch.Tensor, LMState]:
        """(state, previous tokens (N,)) -> log-probabilities (N, vocab) of the next token, new state.

        The first call of a sentence takes <sos> as its previous token.
        """
        log_probs, state = self._log_probs(tokens[:, None], state)  # (N,) -> (N, 1) a one-step sequence
        return log_probs[:, 0], state

    def reorder(self, state: LMState, index: torch.Tensor) -> LMState:
        """Hypotheses `index` (N',) of the state (beam search's parents, greedy's survivors)."""
        return LMState(*(t.index_select(1, index) for t in state))
