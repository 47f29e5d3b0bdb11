"""The ranker: how finished hypotheses compare (length normalisation and coverage), tracing a
hypothesis back through a beam search's history, and when an utterance's search may stop
early (ESPnet's end detection)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from asr.decoding.config import Hypothesis, SearchConfig
from asr.text import Vocabulary


def ranking_score(log_prob: float, length: int, attention: torch.Tensor, config: SearchConfig) -> float:
    """A finished hypothesis's score: its log-probability over (length + 1) ** length_normalization,
    plus `coverage_penalty` x the listener frames whose attention (length + 1, T') sums above 0.5."""
    covered = float((attention.sum(0) > 0.5).sum()) if config.coverage_penalty else 0.0
    return log_prob / (length + 1) ** config.length_normalization + config.coverage_penalty * covered


def best_hypothesis(
    finished: Sequence[tuple[float, int, int]],
    tokens: list[list[int]],
    parents: list[list[int]],
    weights: torch.Tensor,
    frames: int,
    vocab: Vocabulary,
    config: SearchConfig,
) -> Hypothesis:
    """The best of an utterance's `finished` hypotheses (log-probability, step, row), each traced
    back through the search's history: `tokens[s][row]` was fed at step s + 1 by `parents[s][row]`,
    `weights` (steps, rows, T') its attention; `frames` the utterance's listener frames."""
    best: Hypothesis | None = None
    for log_prob, step, row in finished:
        ids, cursors, cursor = [], [row], row
        for s in range(step - 1, -1, -1):
            ids.append(tokens[s][cursor])
            cursor = parents[s][cursor]
            cursors.append(cursor)
        ids.reverse()
        cursors.reverse()
        attention = weights[torch.arange(step + 1), torch.tensor(cursors), :frames]  # (len + 1, T')
        score = ranking_score(log_prob, len(ids), attention, config)
        if best is None or score > best.score:
            best = Hypothesis(vocab.decode(ids), tuple(ids), score, attention, log_prob)
    if best is None:
        return Hypothesis("", (), -math.inf, torch.zeros(0, frames))
    return best


def ended(finished: Sequence[tuple[float, int, int]], step: int, config: SearchConfig) -> bool:
    """ESPnet's end detection on one utterance's finished hypotheses (log-probability, step, row):
    true once, in each of the last `end_window` steps, hypotheses ended and the best of them has a
    log-probability lower than the best so far by more than `end_margin`."""
    if not config.end_detect or not finished:
        return False
    by_step: dict[int, float] = {}
    for log_prob, at, _ in finished:
        by_step[at] = max(by_step.get(at, -math.inf), log_prob)
    best = max(by_step.values())
    recent = [by_step.get(step - m) for m in range(config.end_window)]
    return all(value is not None and value < best - config.end_margin for value in recent)
