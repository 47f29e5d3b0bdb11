"""Beam search, batched over utterances x beams, under the same scorers and rules as greedy search.

All B x K hypotheses advance together with tensor operations; only finished hypotheses
are collected in Python lists. An utterance whose search has stopped leaves the batch,
so it costs nothing afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asr.decoding.config import Hypothesis, LanguageModel, SearchConfig
from asr.decoding.greedy import FRAME_SECONDS, scatter_rows
from asr.decoding.ranking import best_hypothesis, ended
from asr.decoding.rules import RepetitionGuard, apply_rules, ctc_for_search, forbidden_tokens, length_limits
from asr.decoding.scorers import JointScorer
from asr.model import LAS
from asr.text import Vocabulary


def _rows(utterances: torch.Tensor, k: int) -> torch.Tensor:
    """(B',) utterance ids -> (B'*K,) their hypotheses' rows (utterance * K + beam) in the history."""
    return (utterances[:, None] * k + torch.arange(k, device=utterances.device)).view(-1)


@dataclass
class _History:
    """What each step chose, kept per row of all B x K hypotheses, to trace hypotheses back."""

    tokens: list[torch.Tensor]
    parents: list[torch.Tensor]
    weights: list[torch.Tensor]

    def traced(self, finished: list, frames: torch.Tensor, vocab: Vocabulary, config: SearchConfig) -> list[Hypothesis]:
        """The best hypothesis of each utterance; the history moves to the host once."""
        tokens = torch.stack(self.tokens).tolist() if self.tokens else []
        parents = torch.stack(self.parents).tolist() if self.parents else []
        weights = torch.stack(self.weights).float().cpu()  # (steps, B*K, T')
        return [
            best_hypothesis(finished[i], tokens, parents, weights, int(frames[i]), vocab, config)
            for i in range(len(finished))
        ]


@torch.no_grad()
def beam_search(
    model: LAS,
    features: torch.Tensor,
    lengths: torch.Tensor,
    vocab: Vocabulary,
    config: SearchConfig,
    lm: LanguageModel | None = None,
    frame_seconds: float = FRAME_SECONDS,
) -> list[Hypothesis]:
    """Beam search over a batch (B, T, D) of `frame_seconds` frames, (B,); the best hypothesis of each.

    At each step the K x V extensions of an utterance are ranked; those ending in EOS that
    rank within the top K join the utterance's finished list, the best K others continue.
    An utterance stops when it has K finished hypotheses, reaches its maximum length, or
    (`end_detect`) its recent endings are far worse than its best.
    """
    k, v = config.beam, model.config.vocab_size
    encoded, encoded_lengths = model.encode(features, lengths)
    b, device = encoded.shape[0], encoded.device
    ctc, ctc_characters = ctc_for_search(model, encoded, encoded_lengths, config, vocab.blank_id)
    shortest, longest = length_limits(lengths, encoded_lengths, frame_seconds, config, ctc_characters)
    active = torch.arange(b, device=device)  # (B',) utterances still searched
    rows = _rows(active, k)  # (B'*K,) each hypothesis's row in the history
    memory = model.speller.memory(encoded, encoded_lengths)  # (B', ...): its K hypotheses share it
    state = model.speller.initial_state(memory).select(rows // k)
    ctc = ctc.index_select(0, rows // k) if ctc is not None else None
    scorer = JointScorer(ctc, encoded_lengths[rows // k], vocab, config, lm)
    guard = RepetitionGuard.for_search(b * k, device, config, vocab)
    forbidden = forbidden_tokens(vocab, v, device)
    tokens = torch.full((b * k,), vocab.sos_id, dtype=torch.long, device=device)
    scores = torch.full((b, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis per utterance at the start
    finished: list[list[tuple[float, int, int]]] = [[] for _ in range(b)]  # (log-probability, step, row)
    history = _History([], [], [])
    for step in range(int(longest.max()) + 1):  # step = characters so far
        logits, state = model.speller.step(state, tokens, memory, config.attention_window)
        att_logp = torch.log_softmax(logits.float(), dim=-1).masked_fill(forbidden, float("-inf"))  # (B'*K, V)
        joint = apply_rules(scorer(att_logp, tokens, step), step, shortest[rows // k], guard, config, vocab)
        total = (scores.view(-1, 1) + joint).view(-1, k * v)  # (B'*K, V) -> (B', K*V)
        _collect_finished(total, scores, step, longest[active], active, finished, k, v, vocab.eos_id)
        history.weights.append(scatter_rows(state.weights, rows, b * k))
        going = _going(active, finished, step, longest, config, k)
        if going.shape[0] == 0:
            break
        total = total.index_select(0, going)
        total.view(-1, k, v)[:, :, vocab.eos_id] = float("-inf")
        scores, index = total.topk(k, dim=-1)  # (B'', K)
        parents = (torch.div(index, v, rounding_mode="floor") + going[:, None] * k).view(-1)  # positions
        tokens = (index % v).view(-1)
        state = state.select(parents)
        scorer.advance(parents, tokens)
        if guard is not None:
            guard = guard.advance(parents, tokens, vocab.space_id)
        if going.shape[0] < active.shape[0]:  # some utterances stopped: they leave the batch
            memory = memory.select(going)
            scorer.keep(_rows(going, k))  # their hypotheses' positions in this step's batch
            active = active[going]
        parent_rows, rows = rows[parents], _rows(active, k)
        history.parents.append(scatter_rows(parent_rows, rows, b * k))
        history.tokens.append(scatter_rows(tokens, rows, b * k))
    return history.traced(finished, encoded_lengths, vocab, config)


def _collect_finished(
    total: torch.Tensor,
    scores: torch.Tensor,
    step: int,
    longest: torch.Tensor,
    active: torch.Tensor,
    finished: list[list[tuple[float, int, int]]],
    k: int,
    v: int,
    eos: int,
) -> None:
    """Add to `finished` the hypotheses that end here: EOS extensions ranking within the top K of
    their utterance's (B', K*V) `total`, and every live hypothesis of an utterance at its
    maximum length (`longest` (B',)) with its score so far (`scores` (B', K))."""
    kth = total.topk(k, dim=-1).values[:, -1:]  # (B', 1) the K-th best extension
    eos_scores = total.view(-1, k, v)[:, :, eos]  # (B', K)
    ending = (eos_scores >= kth) & torch.isfinite(eos_scores)
    at_limit = (step >= longest)[:, None] & torch.isfinite(scores)
    searched = active.tolist()
    for position, beam in (ending | at_limit).nonzero().tolist():
        value = eos_scores[position, beam] if ending[position, beam] else scores[position, beam]
        finished[searched[position]].append((float(value), step, searched[position] * k + beam))


def _going(
    active: torch.Tensor,
    finished: list[list[tuple[float, int, int]]],
    step: int,
    longest: torch.Tensor,
    config: SearchConfig,
    k: int,
) -> torch.Tensor:
    """(B'',) positions in `active` of the utterances whose search goes on: fewer than K finished
    hypotheses, below the maximum length, and (with end detection) not ended."""
    stopped = [
        len(finished[u]) >= k or step >= int(longest[u]) or ended(finished[u], step, config) for u in active.tolist()
    ]
    return (~torch.tensor(stopped, device=active.device)).nonzero()[:, 0]
