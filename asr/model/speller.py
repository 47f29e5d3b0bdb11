"""The speller: character embedding -> LSTM fed the previous context -> attention -> output layer.

One `step` per output character serves both searches and teacher forcing. Without input
feeding (the LSTM reads the character alone) teacher forcing has a faster path,
`teacher_forced`: the LSTM runs over the whole target in one call, and so does the
attention when it does not read the previous step's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
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
    input_feeding: bool = True
    """The LSTM reads the previous step's context with the previous character (Luong's input
    feeding, as in LAS). False: the character alone, which lets training run the LSTM over a
    whole target at once (`Speller.teacher_forced`); a different model, not a faster equal."""

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
        if config.input_feeding:
            sizes = [config.embedding_dim + memory_dim] + [config.units] * (config.layers - 1)
            self.cells = nn.ModuleList(nn.LSTMCell(size, config.units) for size in sizes)
        else:
            dropout = config.dropout if config.layers > 1 else 0.0  # between layers, as the cells' loop does
            self.lstm = nn.LSTM(config.embedding_dim, config.units, config.layers, batch_first=True, dropout=dropout)
        self.attention = ATTENTIONS[attention.kind](config.units, memory_dim, attention)
        self.hidden_output = nn.Linear(config.units + memory_dim, config.units)
        self.output = nn.Linear(config.units, vocab_size)
        self.dropout = nn.Dropout(config.dropout)

    def memory(self, values: torch.Tensor, lengths: torch.Tensor) -> Memory:
        return Memory(values, self.attention.prepare(values), lengths_to_mask(lengths, values.shape[1]))

    def initial_state(self, memory: Memory) -> SpellerState:
        """Zero LSTM states and context; the "previous" attention is uniform over the real frames."""
        b, t, v = memory.values.shape
        zeros = memory.values.new_zeros(b, self.config.layers, self.config.units)
        uniform = memory.mask.to(memory.values.dtype) / memory.mask.sum(-1, keepdim=True).clamp(min=1)
        return SpellerState(zeros, zeros, memory.values.new_zeros(b, v), uniform)

    def step(
        self, state: SpellerState, tokens: torch.Tensor, memory: Memory, window: int = 0
    ) -> tuple[torch.Tensor, SpellerState]:
        """`window` > 0: the attention scores only that many frames around its previous peak
        (search only; additive and location attention, see `Attention`)."""
        h, state = self.recur(state, tokens, memory, window)
        return self._logits(h, state.context), state

    def recur(
        self, state: SpellerState, tokens: torch.Tensor, memory: Memory, window: int = 0
    ) -> tuple[torch.Tensor, SpellerState]:
        """A step without the output layers: the LSTM's top output (B, U) and the new state."""
        if window and not self.attention.windowed:
            raise ValueError(
                f"an attention window needs additive or location attention, not {type(self.attention).__name__}"
            )
        if self.config.input_feeding:
            h, hidden, cell = self._cells(torch.cat([self.embedding(tokens), state.context], dim=-1), state)
        else:
            initial = (state.hidden.transpose(0, 1).contiguous(), state.cell.transpose(0, 1).contiguous())
            out, (hidden, cell) = self.lstm(self.embedding(tokens)[:, None], initial)  # (B, 1, U), 2 x (layers, B, U)
            h, hidden, cell = out[:, 0], hidden.transpose(0, 1), cell.transpose(0, 1)
        context, weights = self.attention(h, memory.keys, memory.values, memory.mask, state.weights, window)
        return h, SpellerState(hidden, cell, context, weights)

    def _cells(self, x: torch.Tensor, state: SpellerState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Input feeding: cells on x = [y_{i-1}; c_{i-1}] (B, E + V) -> top output (B, U), states (B, layers, U)."""
        hidden, cell = [], []
        # unbind, not [:, layer]: a slice's backward fills a whole zero tensor per step
        for lstm, h, c in zip(self.cells, state.hidden.unbind(1), state.cell.unbind(1), strict=True):
            h, c = lstm(x, (h, c))
            hidden.append(h)
            cell.append(c)
            x = self.dropout(h)
        return h, torch.stack(hidden, 1), torch.stack(cell, 1)

    def _logits(self, h: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """LSTM output (..., U) and context (..., V) -> logits (..., vocab)."""
        features = torch.tanh(self.hidden_output(torch.cat([self.dropout(h), context], dim=-1)))
        return self.output(self.dropout(features))

    def forced_steps(
        self, memory: Memory, inputs: torch.Tensor, running: list[int], sampling_prob: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing step by step (any speller): logits (B, S, vocab) and weights (B, S, T).

        `inputs` (B, S) are the previous tokens of every step, rows ordered longest first;
        step i runs for the first `running[i]` rows only (utterances leave as they end) and its
        outputs are zero for the others. `running = [B] * S` runs every row every step: the
        shapes stay fixed, which a GPU wants (the caller zeroes the steps that do not exist).
        With `sampling_prob` > 0 each input after the first is, with that probability, the
        model's own previous prediction (scheduled sampling), so the output layers run inside
        the loop; otherwise once, over all steps, after it.
        """
        b = inputs.shape[0]
        state = self.initial_state(memory)
        outputs, contexts, weights, logits = [], [], [], []
        for i, n in enumerate(running):
            if n < state.hidden.shape[0]:  # slice only when an utterance leaves: a slice's backward zero-fills
                state, memory = state.head(n), memory.head(n)
            tokens = inputs[:n, i]
            if sampling_prob > 0 and i > 0:
                own = logits[-1][:n].argmax(-1)
                tokens = torch.where(torch.rand(n, device=tokens.device) < sampling_prob, own, tokens)
            h, state = self.recur(state, tokens, memory)
            if sampling_prob > 0:
                logits.append(_all_rows(self._logits(h, state.context), b))  # (n, vocab) -> (B, vocab)
            else:
                outputs.append(_all_rows(h, b))  # (n, U) -> (B, U)
                contexts.append(_all_rows(state.context, b))
            weights.append(_all_rows(state.weights, b))
        if sampling_prob > 0:
            return torch.stack(logits, 1), torch.stack(weights, 1)
        logits = self._logits(torch.stack(outputs, 1), torch.stack(contexts, 1))  # once over (B, S, .)
        return _zero_steps_not_run(logits, running), torch.stack(weights, 1)

    def teacher_forced(
        self, memory: Memory, inputs: torch.Tensor, running: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing without input feeding: logits (B, S, vocab) and weights (B, S, T).

        `inputs` (B, S) are the previous tokens of every step, rows ordered longest first;
        `running[i]` counts the rows whose step i exists (a prefix of the batch). Outputs of
        steps that do not exist are zero, as `LAS.teacher_forced_logits` promises.
        """
        if self.config.input_feeding:
            raise ValueError("teacher_forced needs a speller without input feeding; step through the others")
        b, steps = inputs.shape
        h, _ = self.lstm(self.embedding(inputs))  # (B, S, U); steps past a row's end are computed and zeroed
        if self.attention.reads_previous:
            context, weights = self._attend_step_by_step(h, memory, running)
        else:  # every step at once: the S steps of a row are its "hypotheses" for the attention
            context, weights = self.attention(h.flatten(0, 1), memory.keys, memory.values, memory.mask, None)
            context, weights = context.view(b, steps, -1), weights.view(b, steps, -1)  # (B*S, .) -> (B, S, .)
        logits = self._logits(h, context)
        return _zero_steps_not_run(logits, running), _zero_steps_not_run(weights, running)

    def _attend_step_by_step(
        self, h: torch.Tensor, memory: Memory, running: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """An attention that reads its previous weights, over LSTM outputs (B, S, U) -> (B, S, V), (B, S, T)."""
        b = h.shape[0]
        weights = self.initial_state(memory).weights
        contexts, steps = [], []
        # unbind, not h[:, i]: each indexing's backward would fill a zero tensor of all of h
        for n, query in zip(running, h.unbind(1), strict=True):
            if n < weights.shape[0]:  # slice only when a row leaves: a slice's backward zero-fills
                memory, weights = memory.head(n), weights[:n]
            context, weights = self.attention(query[:n], memory.keys, memory.values, memory.mask, weights)
            contexts.append(_all_rows(context, b))  # (n, V) -> (B, V)
            steps.append(_all_rows(weights, b))
        return torch.stack(contexts, 1), torch.stack(steps, 1)


def _zero_steps_not_run(outputs: torch.Tensor, running: list[int]) -> torch.Tensor:
    """(B, S, ...) outputs with step i zeroed for the rows from `running[i]` on (rows ordered longest
    first); as they are when every row ran every step (no host-to-device copy then)."""
    b = outputs.shape[0]
    if min(running, default=b) == b:
        return outputs
    exists = torch.arange(b, device=outputs.device)[:, None] < torch.tensor(running, device=outputs.device)  # (B, S)
    return outputs * exists.view(*exists.shape, *([1] * (outputs.dim() - 2))).to(outputs.dtype)


def _all_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """(n, D) -> (rows, D), zero rows after the n (x itself when n = rows: no copy)."""
    return x if x.shape[0] == rows else F.pad(x, (0, 0, 0, rows - x.shape[0]))
