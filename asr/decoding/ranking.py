"""The ranker: how finished hypotheses compare (length normalisation and coverage), the finished
hypotheses of a beam search kept in tensors, when an utterance's search may stop early (ESPnet's
end detection), and tracing the best hypotheses back through the search's history."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from asr.decoding.config import Hypothesis, SearchConfig
from asr.decoding.search import scatter_rows
from asr.text import Vocabulary


def length_penalty(length: int, config: SearchConfig) -> float:
    """What a hypothesis of `length` characters divides its log-probability by: (length + 1) ** norm."""
    return (length + 1) ** config.length_normalization


def ranking_score(log_prob: float, length: int, attention: torch.Tensor | None, config: SearchConfig) -> float:
    """A finished hypothesis's score: its log-probability over (length + 1) ** length_normalization,
    plus `coverage_penalty` x the listener frames whose attention (length + 1, T') sums above 0.5
    (which it needs only with a coverage penalty)."""
    covered = float((attention.sum(0) > 0.5).sum()) if config.coverage_penalty and attention is not None else 0.0
    return log_prob / length_penalty(length, config) + config.coverage_penalty * covered


@dataclass
class Finished:
    """The finished hypotheses of B utterances, on the search's device: (B, F) tensors of F = 2K
    slots filled from the left (an utterance stops before it has K, and a step ends at most K
    more), and a last column that takes the writes of hypotheses that did not end, so that
    adding needs no host decision. Each has its log-probability, ranking score, the step it
    ended at (its length) and its row in the search's history."""

    log_prob: torch.Tensor
    score: torch.Tensor
    step: torch.Tensor
    row: torch.Tensor
    count: torch.Tensor

    @classmethod
    def start(cls, b: int, k: int, device: torch.device) -> Finished:
        slots = 2 * k + 1
        empty = torch.full((b, slots), -math.inf, device=device)
        none = torch.full((b, slots), -1, dtype=torch.long, device=device)
        return cls(empty, empty.clone(), none, none.clone(), torch.zeros(b, dtype=torch.long, device=device))

    def add(
        self,
        utterances: torch.Tensor,
        ending: torch.Tensor,
        log_prob: torch.Tensor,
        score: torch.Tensor,
        step: int,
        rows: torch.Tensor,
    ) -> None:
        """Keep the hypotheses of `utterances` (B',) where `ending` (B', K), with their (B', K)
        log-probabilities, ranking scores and history rows; they ended at `step`."""
        spare = self.log_prob.shape[1] - 1
        slots = self.count[utterances, None] + ending.long().cumsum(1) - 1  # (B', K): the next free slots
        slots = torch.where(ending, slots.clamp(max=spare - 1), spare)
        where = (utterances[:, None].expand_as(slots), slots)
        self.log_prob.index_put_(where, log_prob)
        self.score.index_put_(where, score)
        self.step.index_put_(where, torch.full_like(slots, step))
        self.row.index_put_(where, rows)
        self.count.index_add_(0, utterances, ending.sum(1))

    def ended(self, utterances: torch.Tensor, step: int, config: SearchConfig) -> torch.Tensor:
        """(B',) ESPnet's end detection for `utterances` (B',): in each of the last `end_window` steps
        hypotheses ended, and the best of them has a log-probability lower than the best so far by
        more than `end_margin`. All false without `end_detect`."""
        if not config.end_detect:
            return torch.zeros_like(utterances, dtype=torch.bool)
        log_prob, steps = self.log_prob[utterances, :-1], self.step[utterances, :-1]  # (B', F)
        best = log_prob.max(1).values
        ended = torch.isfinite(best)
        for back in range(config.end_window):
            recent = log_prob.masked_fill(steps != step - back, -math.inf).max(1).values
            ended &= torch.isfinite(recent) & (recent < best - config.end_margin)
        return ended


@dataclass
class History:
    """What each step of a search chose, per row of all its N hypotheses (rows of utterances that
    left hold anything): the token each row was extended by and the row it continued (steps 1, 2,
    ...), and each row's attention peak frame (N,) and, when kept, weights (N, T') (steps 0, 1, ...)."""

    tokens: list[torch.Tensor] = field(default_factory=list)
    parents: list[torch.Tensor] = field(default_factory=list)
    peaks: list[torch.Tensor] = field(default_factory=list)
    weights: list[torch.Tensor] = field(default_factory=list)

    def attended(self, weights: torch.Tensor, rows: torch.Tensor, size: int, keep_weights: bool) -> None:
        """Record a step's attention (N', T') of the hypotheses in `rows` (N',) of the `size` rows:
        its peak frames, and the weights too when `keep_weights`."""
        self.peaks.append(scatter_rows(weights.argmax(-1), rows, size))
        if keep_weights:
            self.weights.append(scatter_rows(weights, rows, size))

    def extended(self, parents: torch.Tensor, tokens: torch.Tensor, rows: torch.Tensor, size: int) -> None:
        """Record a step's choice: the hypotheses now in `rows` (N',) continue the rows `parents` (N',)
        with `tokens` (N',)."""
        self.parents.append(scatter_rows(parents, rows, size))
        self.tokens.append(scatter_rows(tokens, rows, size))

    def best(self, finished: Finished, encoded_lengths: torch.Tensor, vocab: Vocabulary) -> list[Hypothesis]:
        """The best finished hypothesis of each utterance (by ranking score), traced back; the
        history moves to the host once. An utterance without any gets an empty hypothesis."""
        tokens = torch.stack(self.tokens).tolist() if self.tokens else []
        parents = torch.stack(self.parents).tolist() if self.parents else []
        peaks = torch.stack(self.peaks).cpu()  # (steps, N)
        weights = torch.stack(self.weights).float().cpu() if self.weights else None  # (steps, N, T')
        slots = finished.log_prob.shape[1] - 1
        count, score = finished.count.clamp(max=slots).tolist(), finished.score.cpu()
        log_prob, steps, rows = finished.log_prob.tolist(), finished.step.tolist(), finished.row.tolist()
        frames = encoded_lengths.tolist()
        hypotheses = []
        for u, n in enumerate(count):
            if n == 0:
                empty = torch.zeros(0, frames[u]) if weights is not None else None
                hypotheses.append(Hypothesis("", (), -math.inf, empty, peaks=torch.zeros(0, dtype=torch.long)))
                continue
            best = int(score[u, :n].argmax())
            step, cursor = steps[u][best], rows[u][best]
            ids, cursors = [], [cursor]
            for s in range(step - 1, -1, -1):
                ids.append(tokens[s][cursor])
                cursor = parents[s][cursor]
                cursors.append(cursor)
            ids.reverse()
            path = (torch.arange(step + 1), torch.tensor(cursors[::-1]))  # (step, row) of each step
            attention = weights[path][:, : frames[u]] if weights is not None else None  # (len + 1, T')
            text = vocab.decode(ids)
            hypotheses.append(
                Hypothesis(text, tuple(ids), float(score[u, best]), attention, log_prob[u][best], peaks[path])
            )
        return hypotheses
