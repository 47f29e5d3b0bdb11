"""The speller: character embedding -> LSTM fed the previous context -> attention -> output layer.

One `step` per output character serves teacher forcing and both searches alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from asr.model.attention import ATTENTIONS, AttentionConfig
from asr.model.listener import lengths_to_mask


@dataclass(frozen=True)
class SpellerConfig:
    """Character embedding, LSTM layers and dropout of the speller."""

    embedding_dim: int = 128
    units: int = 256
    layers: int = 1
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.units < 1 or not 1 <= self.layers <= 4:
            raise ValueError("speller embedding_dim and units must be positive, layers 1..4")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"speller.dropout must lie in [0, 1), got {self.dropout}")


class SpellerState(NamedTuple):
    """Decoder state; every tensor's first axis is the batch (or batch x beam).

    hidden, cell: (B, layers, units); context: (B, V); weights: (B, T).
    """

    hidden: torch.Tensor
    cell: torch.Tensor
    context: torch.Tensor
    weights: torch.Tensor

    def select(self, index: torch.Tensor) -> SpellerState:
        """Rows `index` of every tensor (beam search reorders hypotheses with it)."""
        return SpellerState(*(t.index_select(0, index) for t in self))

    def head(self, rows: int) -> SpellerState:
        """The first `rows` rows of every tensor (views; teacher forcing drops ended utterances)."""
        return SpellerState(*(t[:rows] for t in self))


class Memory(NamedTuple):
    """What the speller attends to: listener output (B, T, V), its keys, and its mask (B, T)."""

    values: torch.Tensor
    keys: torch.Tensor
    mask: torch.Tensor

    def select(self, index: torch.Tensor) -> Memory:
        """Rows `index` of every tensor."""
        return Memory(*(t.index_select(0, index) for t in self))

    def head(self, rows: int) -> Memory:
        """The first `rows` rows of every tensor (views)."""
        return Memory(*(t[:rows] for t in self))


class Speller(nn.Module):
    """One output character per `step`: (state, previous tokens (B,)) -> logits (B, vocab), new state."""

    def __init__(self, config: SpellerConfig, attention: AttentionConfig, memory_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim)
        sizes = [config.embedding_dim + memory_dim] + [config.units] * (config.layers - 1)
        self.cells = nn.ModuleList(nn.LSTMCell(size, config.units) for size in sizes)
        self.attention = ATTENTIONS[attention.kind](config.units, memory_dim, attention)
        self.hidden_output = nn.Linear(config.units + memory_dim, config.units)
        self.output = nn.Linear(config.units, vocab_size)
        self.dropout = nn.Dropout(config.dropout)

    def memory(self, values: torch.Tensor, lengths: torch.Tensor) -> Memory:
        return Memory(values, self.attention.prepare(values), lengths_to_mask(lengths, values.shape[1]))

    def initial_state(self, memory: Memory) -> SpellerState:
        """Zero LSTM states and context; the "previous" attention is uniform over the real frames."""
        b, t, v = memory.values.shape
        zeros = memory.values.new_zeros(b, len(self.cells), self.config.units)
        uniform = memory.mask.to(memory.values.dtype) / memory.mask.sum(-1, keepdim=True).clamp(min=1)
        return SpellerState(zeros, zeros, memory.values.new_zeros(b, v), uniform)

    def step(self, state: SpellerState, tokens: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, SpellerState]:
        x = torch.cat([self.embedding(tokens), state.context], dim=-1)  # input feeding: [y_{i-1}; c_{i-1}]
        hidden, cell = [], []
        # unbind, not [:, layer]: a slice's backward fills a whole zero tensor per step
        for lstm, h, c in zip(self.cells, state.hidden.unbind(1), state.cell.unbind(1), strict=True):
            h, c = lstm(x, (h, c))
            hidden.append(h)
            cell.append(c)
            x = self.dropout(h)
        context, weights = self.attention(h, memory.keys, memory.values, memory.mask, state.weights)
        features = torch.tanh(self.hidden_output(torch.cat([self.dropout(h), context], dim=-1)))
        logits = self.output(self.dropout(features))
        return logits, SpellerState(torch.stack(hidden, 1), torch.stack(cell, 1), context, weights)
