"""Attention over the listener output: dot, general, additive, location-aware, multi-head.

All share one interface: `prepare(memory)` once per batch (the key projections), then
`forward(query, keys, memory, mask, previous weights) -> (context, weights)` per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


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


def per_utterance(x: torch.Tensor, utterances: int) -> torch.Tensor:
    """(B*K, ...) -> (B, K, ...): the K hypotheses of an utterance are consecutive rows."""
    return x.view(utterances, -1, *x.shape[1:])


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax of (B*K, ..., T) over T counting only frames where `mask` (B, T) is True.

    Rows whose mask is all False get uniform weights (over frames that hold zeros)."""
    grouped = per_utterance(scores, mask.shape[0]).float()  # -> (B, K, ..., T)
    mask = mask.view(mask.shape[0], *([1] * (grouped.dim() - 2)), mask.shape[1])  # (B, T) -> (B, 1, ..., 1, T)
    # the most negative finite value, not -inf: a row without any real frame (an utterance too
    # short for one listener frame) then gets finite weights over zero padding, not NaN
    masked = grouped.masked_fill(~mask, torch.finfo(grouped.dtype).min)
    return torch.softmax(masked, dim=-1).to(scores.dtype).view_as(scores)


class Attention(nn.Module):
    """Base of all attentions: `prepare(memory)` once per batch, then one call per output step.

    `forward(query (N, Q), keys, memory (B, T, V), mask (B, T), previous (N, T))
    -> context (N, V), weights (N, T)` with weights summing to 1 over the real frames.
    N = B x K: K hypotheses per utterance (consecutive rows) share its memory and keys,
    which beam search therefore never copies K times; K = 1 in training, or the S steps
    of a target when a speller without input feeding attends for all of them at once.
    `previous` is read only by attentions with `reads_previous`; the others accept None.
    `window` > 0 (search only, attentions with `windowed`): each row scores only `window`
    frames, from a quarter of the window before the peak of its previous weights (moved back
    to end within the utterance's frames), and its weights are zero elsewhere: an
    approximation that makes a step's cost W/T of the full one.
    """

    reads_previous = False
    """Whether the scores depend on the previous step's weights (then steps run one by one)."""
    windowed = False
    """Whether `forward` takes a `window` (additive and location attention)."""

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        """Per-utterance key projections, computed once instead of at every step."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor,
        previous: torch.Tensor | None,
        window: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def _context(weights: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """(N, T) weights, (B, T, V) memory -> (N, V) contexts."""
    grouped = per_utterance(weights.to(memory.dtype), memory.shape[0])  # (N, T) -> (B, K, T)
    return torch.bmm(grouped, memory).flatten(0, 1)  # (B, K, T) @ (B, T, V) -> (B, K, V) -> (N, V)


def _scores(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Dot products of (N, A) queries with (B, T, A) keys -> (N, T)."""
    grouped = per_utterance(queries.to(keys.dtype), keys.shape[0])  # (N, A) -> (B, K, A)
    return torch.bmm(grouped, keys.transpose(1, 2)).flatten(0, 1)  # (B, K, A) @ (B, A, T) -> (B, K, T) -> (N, T)


class DotAttention(Attention):
    """Luong's dot score between projected query and keys, scaled by 1/sqrt(dim)."""

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, config.dim)
        self.key = nn.Linear(memory_dim, config.dim)
        self.scale = 1 / math.sqrt(config.dim)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key(memory)

    def forward(self, query, keys, memory, mask, previous, window=0):  # noqa: D102 (documented on Attention)
        weights = masked_softmax(_scores(self.query(query), keys) * self.scale, mask)
        return _context(weights, memory), weights


class GeneralAttention(Attention):
    """Luong's "general" score: query^T W memory, with W applied to the memory once."""

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__()
        self.weight = nn.Linear(memory_dim, query_dim, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.weight(memory)

    def forward(self, query, keys, memory, mask, previous, window=0):  # noqa: D102
        weights = masked_softmax(_scores(query, keys), mask)
        return _context(weights, memory), weights


class AdditiveAttention(Attention):
    """Bahdanau's MLP score v^T tanh(W q + U m + b), the LAS paper's content attention."""

    windowed = True

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, config.dim, bias=False)
        self.key = nn.Linear(memory_dim, config.dim)
        self.score = nn.Linear(config.dim, 1, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key(memory)

    def hidden(
        self, query: torch.Tensor, keys: torch.Tensor, previous: torch.Tensor | None, frames: torch.Tensor | None = None
    ) -> torch.Tensor:
        """W q + U m + b, (N, T, A), in a tensor of its own (the caller applies tanh in place).

        With `frames` (N, W), the frames of each row's window, `keys` are each row's own (N, W, A)."""
        b, t, a = keys.shape
        q = per_utterance(self.query(query), b)[:, :, None, :]  # (N, A) -> (B, K, 1, A)
        return (keys[:, None] + q).view(-1, t, a)  # (B, 1, T, A) + (B, K, 1, A) -> (B, K, T, A) -> (N, T, A)

    def _scores(self, hidden: torch.Tensor) -> torch.Tensor:
        # in place: (N, T, A) is the largest tensor of a decoder step, and every fresh one costs page faults
        return torch.matmul(hidden.tanh_(), self.score.weight[0].to(hidden.dtype))  # (N, T, A) @ (A,) -> (N, T)

    def forward(self, query, keys, memory, mask, previous, window=0):  # noqa: D102
        if 0 < window < keys.shape[1]:
            weights = self._windowed(query, keys, mask, previous, window)
        else:
            weights = masked_softmax(self._scores(self.hidden(query, keys, previous)), mask)
        return _context(weights, memory), weights

    def _windowed(
        self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, previous: torch.Tensor, window: int
    ) -> torch.Tensor:
        """Weights (N, T) scored on `window` frames per row, zero elsewhere (see `Attention`)."""
        b = keys.shape[0]
        rows = torch.arange(b, device=keys.device).repeat_interleave(query.shape[0] // b)  # (N,) utterance of a row
        last_start = (mask.sum(-1)[rows] - window).clamp(min=0)  # (N,): windows end within the utterance's frames
        start = torch.minimum((previous.argmax(-1) - window // 4).clamp(min=0), last_start)  # (N,) first frames
        frames = start[:, None] + torch.arange(window, device=keys.device)  # (N, W)
        own_keys = keys[rows[:, None], frames]  # (B, T, A) -> (N, W, A): each row is its own utterance, K = 1
        scores = self._scores(self.hidden(query, own_keys, previous, frames))  # (N, W)
        local = masked_softmax(scores, mask[rows[:, None], frames])  # the window's real frames only
        return torch.zeros_like(previous).scatter_(1, frames, local.to(previous.dtype))


class LocationAttention(AdditiveAttention):
    """Chorowski et al. (2015): the additive score also sees a convolution of the previous weights."""

    reads_previous = True

    def __init__(self, query_dim: int, memory_dim: int, config: AttentionConfig) -> None:
        super().__init__(query_dim, memory_dim, config)
        kernel = config.location_kernel
        self.conv = nn.Conv1d(1, config.location_channels, kernel, padding=kernel // 2, bias=False)
        self.location = nn.Linear(config.location_channels, config.dim, bias=False)

    def hidden(
        self, query: torch.Tensor, keys: torch.Tensor, previous: torch.Tensor | None, frames: torch.Tensor | None = None
    ) -> torch.Tensor:
        """W q + U m + F conv(previous) + b, (N, T, A), or (N, W, A) on the `frames` (N, W) of each row."""
        assert previous is not None, "location attention reads the previous weights"
        hidden = super().hidden(query, keys, previous, frames)
        located = self._located(previous.to(self.conv.weight.dtype), frames)  # (N, C, T) or (N, C, W)
        located = located.transpose(1, 2).flatten(0, 1).to(hidden.dtype)  # -> (N, T, C) -> (N*T, C)
        # the location term is added in place by one addmm_: (N*T, A) += (N*T, C) @ (C, A)
        hidden.view(-1, hidden.shape[-1]).addmm_(located, self.location.weight.t().to(hidden.dtype))
        return hidden

    def _located(self, previous: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
        """The convolution of the previous weights (N, T) on every frame (N, C, T), or on the
        `frames` (N, W) of each row's window (N, C, W), the same values from the window and
        the kernel's reach on either side."""
        if frames is None:
            return self.conv(previous[:, None, :])  # (N, T) -> (N, 1, T) -> (N, C, T)
        reach = self.conv.padding[0]
        span = frames[:, :1] + torch.arange(frames.shape[1] + 2 * reach, device=frames.device)  # (N, W + 2 reach)
        around = F.pad(previous, (reach, reach)).gather(1, span)  # span counts frames of the padded weights
        return F.conv1d(around[:, None, :], self.conv.weight)  # (N, 1, W + 2 reach) -> (N, C, W)


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

    def forward(self, query, keys, memory, mask, previous, window=0):  # noqa: D102
        b, t, _ = keys.shape
        k, v = keys.view(b, t, 2, self.heads, self.head_dim).unbind(2)  # (B, T, 2*dim) -> 2 x (B, T, H, d)
        q = per_utterance(self.query(query), b).unflatten(-1, (self.heads, self.head_dim))  # (N, dim) -> (B, K, H, d)
        if self.additive:
            hidden = (k[:, None] + q[:, :, None]).tanh_()  # (B, 1, T, H, d) + (B, K, 1, H, d) -> (B, K, T, H, d)
            scores = torch.einsum("bkthd,hd->bkht", hidden, self.score.to(hidden.dtype))
        else:
            scores = torch.einsum("bkhd,bthd->bkht", q, k) / math.sqrt(self.head_dim)
        weights = masked_softmax(scores.flatten(0, 1), mask)  # (B, K, H, T) -> (N, H, T)
        context = torch.einsum("bkht,bthd->bkhd", per_utterance(weights.to(v.dtype), b), v)  # (B, K, H, d)
        return self.output(context.flatten(0, 1).flatten(1)), weights.mean(dim=1)  # -> (N, dim); (N, T)


ATTENTIONS: dict[str, type[Attention]] = {
    "dot": DotAttention,
    "general": GeneralAttention,
    "additive": AdditiveAttention,
    "location": LocationAttention,
    "multihead": MultiHeadAttention,
}
