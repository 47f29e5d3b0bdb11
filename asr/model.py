"""Listen, Attend and Spell (Chan et al. 2016) with joint CTC (Kim et al. 2017).

Listener: optional front end, then BiLSTM layers that padding never reaches; a pyramid
layer concatenates adjacent frame pairs before its BiLSTM, halving the frame rate.
Speller: character embedding -> LSTM fed the previous context -> attention over the
listener output -> output layer on [state; context]. A CTC head reads the listener
output. Model code only computes: no I/O, no device choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_length) bool, True on real frames."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


# ---------------------------------------------------------------------- listener


@dataclass(frozen=True)
class ListenerConfig:
    """Front end and BiLSTM stack; `reduce` lists the (0-based) layers that halve the frame rate."""

    input_dim: int = 80
    frontend: Literal["none", "linear", "conv2d"] = "none"
    frontend_dim: int = 256
    """Output size of the linear front end; channels of the conv2d front end (which also subsamples 4x)."""
    layers: int = 3
    units: int = 256
    """Units per direction."""
    reduce: tuple[int, ...] = (1, 2)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.layers < 1 or self.units < 1 or self.input_dim < 1:
            raise ValueError("listener layers, units and input_dim must be positive")
        if any(not 0 <= i < self.layers for i in self.reduce) or len(set(self.reduce)) != len(self.reduce):
            raise ValueError(f"listener.reduce must list distinct layers in 0..{self.layers - 1}, got {self.reduce}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"listener.dropout must lie in [0, 1), got {self.dropout}")

    @property
    def subsampling(self) -> int:
        """Total frame-rate reduction from features to listener output."""
        return 2 ** len(self.reduce) * (4 if self.frontend == "conv2d" else 1)


class Conv2dSubsampling(nn.Module):
    """Two 3x3 stride-2 convolutions (a VGG-like block): (B, T, D), (B,) -> (B, T', C), (B,), T' ~ T/4."""

    def __init__(self, input_dim: int, channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(), nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU()
        )
        freq = ((input_dim - 3) // 2 + 1 - 3) // 2 + 1  # feature bins after two valid stride-2 convolutions
        self.project = nn.Linear(channels * freq, channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.convs(x[:, None])  # (B, T, D) -> (B, 1, T, D) -> (B, C, T', D')
        y = y.transpose(1, 2).flatten(2)  # -> (B, T', C * D')
        for _ in range(2):
            lengths = torch.div(lengths - 3, 2, rounding_mode="floor") + 1
        return self.project(y), lengths.clamp(min=0)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of (B, T, D) within its own length; padding stays at the end."""
    t = x.shape[1]
    steps = torch.arange(t, device=x.device)[None, :]  # (1, T)
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # (B, T)
    return x.gather(1, index[..., None].expand_as(x))


class BiLSTM(nn.Module):
    """A bidirectional LSTM layer in which padding never reaches a real frame's state.

    (B, T, D) zero-padded, (B,) -> (B, T, 2 * units) with padded frames zero. The
    forward direction reads the padded batch as it is (padding comes after the real
    frames); the backward direction reads each sequence reversed within its length,
    so it too starts on real frames. This is what packed sequences guarantee, with the
    fused padded kernels (packed LSTM backward on a CPU measured 23x slower).
    """

    def __init__(self, input_dim: int, units: int) -> None:
        super().__init__()
        self.forward_lstm = nn.LSTM(input_dim, units, batch_first=True)
        self.backward_lstm = nn.LSTM(input_dim, units, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        forward, _ = self.forward_lstm(x)
        backward, _ = self.backward_lstm(reverse_padded(x, lengths))
        out = torch.cat([forward, reverse_padded(backward, lengths)], dim=-1)
        return out * lengths_to_mask(lengths, x.shape[1])[..., None].to(out.dtype)


class Listener(nn.Module):
    """(B, T, input_dim), (B,) -> (B, T / subsampling, 2 * units), (B,); padded frames are zero."""

    def __init__(self, config: ListenerConfig) -> None:
        super().__init__()
        self.config = config
        if config.frontend == "linear":
            self.frontend: nn.Module | None = nn.Linear(config.input_dim, config.frontend_dim)
            size = config.frontend_dim
        elif config.frontend == "conv2d":
            self.frontend = Conv2dSubsampling(config.input_dim, config.frontend_dim)
            size = config.frontend_dim
        else:
            self.frontend = None
            size = config.input_dim
        self.lstms = nn.ModuleList()
        for i in range(config.layers):
            in_size = size if i == 0 else 2 * config.units
            if i in config.reduce:
                in_size *= 2  # pairs of frames are concatenated
            self.lstms.append(BiLSTM(in_size, config.units))
        self.dropout = nn.Dropout(config.dropout)

    @property
    def output_dim(self) -> int:
        return 2 * self.config.units

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = lengths.to(x.device)
        if isinstance(self.frontend, Conv2dSubsampling):
            x, lengths = self.frontend(x, lengths)
        elif self.frontend is not None:
            x = torch.relu(self.frontend(x))
        x = x * lengths_to_mask(lengths, x.shape[1])[..., None].to(x.dtype)  # padding exactly zero
        for i, lstm in enumerate(self.lstms):
            if i in self.config.reduce:
                if x.shape[1] % 2:
                    x = F.pad(x, (0, 0, 0, 1))  # an odd last frame is paired with a zero frame
                x = x.reshape(x.shape[0], x.shape[1] // 2, 2 * x.shape[2])  # (B, T, D) -> (B, T/2, 2D)
                lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
            if i > 0:
                x = self.dropout(x)
            x = lstm(x, lengths)
        return x, lengths


# --------------------------------------------------------------------- attention


@dataclass(frozen=True)
class AttentionConfig:
    """Which attention and its sizes. `kind`: dot, general, additive, location or multihead."""

    kind: Literal["dot", "general", "additive", "location", "multihead"] = "location"
    dim: int = 256
    heads: int = 4
    head_kind: Literal["dot", "additive"] = "additive"
    """Scoring of each head of multi-head attention."""
    location_channels: int = 10
    location_kernel: int = 31

    def __post_init__(self) -> None:
        if self.dim < 1 or self.heads < 1:
            raise ValueError("attention dim and heads must be positive")
        if self.kind == "multihead" and self.dim % self.heads:
            raise ValueError(f"attention.dim ({self.dim}) must be a multiple of attention.heads ({self.heads})")
        if self.location_kernel % 2 == 0:
            raise ValueError(f"attention.location_kernel must be odd, got {self.location_kernel}")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis (T) counting only frames where `mask` is True."""
    return torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=-1).to(scores.dtype)


class Attention(nn.Module):
    """Base of all attentions: `prepare(memory)` once per batch, then one call per output step.

    `forward(query (B, Q), keys, memory (B, T, V), mask (B, T), previous (B, T))
    -> context (B, V), weights (B, T)` with weights summing to 1 over the real frames.
    """

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        """Per-utterance key projections, computed once instead of at every step."""
        raise NotImplementedError

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, previous: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def _context(weights: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    return torch.bmm(weights[:, None, :].to(memory.dtype), memory)[:, 0]  # (B, 1, T) @ (B, T, V) -> (B, V)


class DotAttention(Attention):
    """Luong's dot score between projected query and keys, scaled by 1/sqrt(dim)."""

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, config.dim)
        self.key = nn.Linear(memory_dim, config.dim)
        self.scale = 1 / math.sqrt(config.dim)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key(memory)

    def forward(self, query, keys, memory, mask, previous):  # noqa: D102 (documented on Attention)
        scores = torch.bmm(keys, self.query(query)[:, :, None])[..., 0] * self.scale  # (B, T, A) @ (B, A, 1)
        weights = masked_softmax(scores, mask)
        return _context(weights, memory), weights


class GeneralAttention(Attention):
    """Luong's "general" score: query^T W memory, with W applied to the memory once."""

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__()
        self.weight = nn.Linear(memory_dim, query_dim, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.weight(memory)

    def forward(self, query, keys, memory, mask, previous):  # noqa: D102
        weights = masked_softmax(torch.bmm(keys, query[:, :, None])[..., 0], mask)  # (B, T, Q) @ (B, Q, 1)
        return _context(weights, memory), weights


class AdditiveAttention(Attention):
    """Bahdanau's MLP score v^T tanh(W q + U m + b), the LAS paper's content attention."""

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, config.dim, bias=False)
        self.key = nn.Linear(memory_dim, config.dim)
        self.score = nn.Linear(config.dim, 1, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key(memory)

    def location_term(self, previous: torch.Tensor) -> torch.Tensor | float:
        """What the previous weights (B, T) add to the hidden layer (B, T, A); nothing here."""
        return 0.0

    def forward(self, query, keys, memory, mask, previous):  # noqa: D102
        hidden = torch.tanh(keys + self.query(query)[:, None, :] + self.location_term(previous))  # (B, T, A)
        weights = masked_softmax(self.score(hidden)[..., 0], mask)
        return _context(weights, memory), weights


class LocationAttention(AdditiveAttention):
    """Chorowski et al. (2015): the additive score also sees a convolution of the previous weights."""

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__(query_dim, memory_dim, config)
        kernel = config.location_kernel
        self.conv = nn.Conv1d(1, config.location_channels, kernel, padding=kernel // 2, bias=False)
        self.location = nn.Linear(config.location_channels, config.dim, bias=False)

    def location_term(self, previous: torch.Tensor) -> torch.Tensor:
        located = self.conv(previous[:, None, :].to(self.conv.weight.dtype))  # (B, T) -> (B, 1, T) -> (B, C, T)
        return self.location(located.transpose(1, 2))  # -> (B, T, C) -> (B, T, A)


class MultiHeadAttention(Attention):
    """Several heads of dot or additive attention over projected values, concatenated.

    The weights returned are the heads' mean (for plots and timestamps).
    """

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.head_dim = config.dim // config.heads
        self.additive = config.head_kind == "additive"
        self.query = nn.Linear(query_dim, config.dim, bias=not self.additive)
        self.key = nn.Linear(memory_dim, config.dim)
        self.value = nn.Linear(memory_dim, config.dim)
        self.output = nn.Linear(config.dim, memory_dim)
        if self.additive:
            self.score = nn.Parameter(torch.randn(config.heads, self.head_dim) / math.sqrt(self.head_dim))

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.key(memory), self.value(memory)], dim=-1)  # (B, T, 2 * dim)

    def forward(self, query, keys, memory, mask, previous):  # noqa: D102
        b, t, _ = keys.shape
        k, v = keys.view(b, t, 2, self.heads, self.head_dim).unbind(2)  # (B, T, 2*dim) -> 2 x (B, T, H, d)
        q = self.query(query).view(b, 1, self.heads, self.head_dim)  # (B, dim) -> (B, 1, H, d)
        if self.additive:
            scores = (torch.tanh(k + q) * self.score).sum(-1)  # (B, T, H, d) -> (B, T, H)
        else:
            scores = (k * q).sum(-1) / math.sqrt(self.head_dim)
        weights = masked_softmax(scores.transpose(1, 2), mask[:, None, :])  # (B, H, T)
        context = torch.einsum("bht,bthd->bhd", weights.to(v.dtype), v).reshape(b, -1)  # (B, H, d) -> (B, dim)
        return self.output(context), weights.mean(dim=1)


ATTENTIONS: dict[str, type[Attention]] = {
    "dot": DotAttention,
    "general": GeneralAttention,
    "additive": AdditiveAttention,
    "location": LocationAttention,
    "multihead": MultiHeadAttention,
}


# ----------------------------------------------------------------------- speller


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


class Memory(NamedTuple):
    """What the speller attends to: listener output (B, T, V), its keys, and its mask (B, T)."""

    values: torch.Tensor
    keys: torch.Tensor
    mask: torch.Tensor

    def select(self, index: torch.Tensor) -> Memory:
        return Memory(*(t.index_select(0, index) for t in self))


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


# --------------------------------------------------------------------------- LAS


@dataclass(frozen=True)
class LASConfig:
    """The whole model. Special token ids follow `asr.text.Vocabulary`."""

    listener: ListenerConfig = field(default_factory=ListenerConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    speller: SpellerConfig = field(default_factory=SpellerConfig)
    vocab_size: int = 32
    ctc_weight: float = 0.3
    label_smoothing: float = 0.1
    blank_id: int = 0
    pad_id: int = 1
    sos_id: int = 2
    eos_id: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.ctc_weight <= 1:
            raise ValueError(f"ctc_weight must lie in [0, 1], got {self.ctc_weight}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if max(self.blank_id, self.pad_id, self.sos_id, self.eos_id) >= self.vocab_size:
            raise ValueError(f"special token ids must be below vocab_size={self.vocab_size}")


@dataclass(frozen=True)
class Losses:
    """Per-token losses of a batch: `total` = w * ctc + (1 - w) * attention; `tokens` counts targets + eos."""

    total: torch.Tensor
    attention: torch.Tensor
    ctc: torch.Tensor
    tokens: int


class LAS(nn.Module):
    """Listener + speller + CTC head. `forward` computes the training losses."""

    def __init__(self, config: LASConfig) -> None:
        super().__init__()
        self.config = config
        self.listener = Listener(config.listener)
        memory_dim = self.listener.output_dim
        self.speller = Speller(config.speller, config.attention, memory_dim, config.vocab_size)
        self.ctc_head = nn.Linear(memory_dim, config.vocab_size) if config.ctc_weight > 0 else None

    def encode(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D), (B,) -> listener output (B, T', V), (B,)."""
        return self.listener(features, lengths)

    def ctc_log_probs(self, encoded: torch.Tensor) -> torch.Tensor:
        """(B, T', V) -> CTC log-probabilities (B, T', vocab) in float32."""
        if self.ctc_head is None:
            raise ValueError("this model has no CTC head (ctc_weight was 0 in training)")
        return torch.log_softmax(self.ctc_head(encoded).float(), dim=-1)

    def teacher_forced_logits(
        self, memory: Memory, targets: torch.Tensor, target_lengths: torch.Tensor, sampling_prob: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, L+1, vocab) and attention (B, L+1, T') for inputs <sos> + targets.

        With `sampling_prob` > 0, each input after the first is, with that probability,
        the model's own previous prediction instead of the reference (scheduled sampling).
        """
        b = targets.shape[0]
        sos = targets.new_full((b, 1), self.config.sos_id)
        inputs = torch.cat([sos, targets], dim=1)  # (B, L+1)
        state = self.speller.initial_state(memory)
        logits, weights = [], []
        for i in range(inputs.shape[1]):
            tokens = inputs[:, i]
            if i > 0 and sampling_prob > 0:
                own = logits[-1].argmax(-1)
                tokens = torch.where(torch.rand(b, device=tokens.device) < sampling_prob, own, tokens)
            step_logits, state = self.speller.step(state, tokens, memory)
            logits.append(step_logits)
            weights.append(state.weights)
        return torch.stack(logits, 1), torch.stack(weights, 1)

    def forward(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
        sampling_prob: float = 0.0,
    ) -> Losses:
        """Losses of a batch. Targets (B, L) are padded with pad_id and hold no sos/eos."""
        config = self.config
        encoded, encoded_lengths = self.encode(features, lengths)
        memory = self.speller.memory(encoded, encoded_lengths)
        logits, _ = self.teacher_forced_logits(memory, targets, target_lengths, sampling_prob)
        # outputs: targets followed by <eos> at each utterance's own length, pad elsewhere
        outputs = F.pad(targets, (0, 1), value=config.pad_id)
        outputs[torch.arange(targets.shape[0], device=targets.device), target_lengths.to(targets.device)] = (
            config.eos_id
        )
        tokens = int(target_lengths.sum()) + targets.shape[0]
        attention = F.cross_entropy(
            logits.float().flatten(0, 1),
            outputs.flatten(),
            ignore_index=config.pad_id,
            label_smoothing=config.label_smoothing,
            reduction="sum",
        ) / max(tokens, 1)
        if self.ctc_head is None:
            ctc = attention.new_zeros(())
        else:
            log_probs = self.ctc_log_probs(encoded).transpose(0, 1)  # (B, T', V) -> (T', B, V) for ctc_loss
            ctc = F.ctc_loss(
                log_probs,
                targets,
                encoded_lengths,
                target_lengths,
                blank=config.blank_id,
                reduction="sum",
                zero_infinity=True,
            ) / max(int(target_lengths.sum()), 1)
        total = config.ctc_weight * ctc + (1 - config.ctc_weight) * attention
        return Losses(total=total, attention=attention, ctc=ctc, tokens=tokens)
