"""Beam search, batched over utterances x beams, under the same scorers and rules as greedy search.

All B x K hypotheses advance together with tensor operations, and the finished ones are kept
in tensors too (`ranking.Finished`), so a step never waits for the device to tell the host anything.
The host looks at which utterances have stopped every step on a CPU (looking costs nothing
there) and every `GPU_LOOK_EVERY` steps on a GPU (each look waits for the GPU to catch up);
stopped utterances then leave the batch, so they cost nothing afterwards. The history keeps
each step's tokens, parents and attention peak frames, and the attention weights only when
`SearchConfig.keep_attention` asks for them.
"""

from __future__ import annotations

import math

import torch

from asr.decoding.config import Hypothesis, LanguageModel, SearchConfig
from asr.decoding.ranking import Finished, History, length_penalty
from asr.decoding.search import FRAME_SECONDS, Search, look_every
from asr.model import LAS
from asr.text import Vocabulary


def _rows(utterances: torch.Tensor, k: int) -> torch.Tensor:
    """(B',) utterance ids -> (B'*K,) their hypotheses' rows (utterance * K + beam) in the history."""
    return (utterances[:, None] * k + torch.arange(k, device=utterances.device)).view(-1)


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
    rank within the top K join the utterance's finished hypotheses, the best K others continue.
    An utterance stops when it has K finished hypotheses, reaches its maximum length, or
    (`end_detect`) its recent endings are far worse than its best.
    """
    k, v = config.beam, model.config.vocab_size
    search = Search(model, features, lengths, vocab, config, lm, frame_seconds, width=k)
    encoded_lengths, shortest, longest = search.encoded_lengths, search.shortest, search.longest
    b, device = encoded_lengths.shape[0], search.tokens.device
    looks = look_every(device)
    active = torch.arange(b, device=device)  # (B',) utterances in the batch
    rows = _rows(active, k)  # (B'*K,) each hypothesis's row in the history
    scores = torch.full((b, k), -math.inf, device=device)
    scores[:, 0] = 0.0  # one live hypothesis per utterance at the start
    coverage = torch.zeros_like(search.state.weights) if config.coverage_penalty else None  # (B'*K, T') so far
    finished = Finished.start(b, k, device)
    stopped = torch.zeros(b, dtype=torch.bool, device=device)
    history = History()
    last_step = int(longest.max())
    for step in range(last_step + 1):  # step = characters so far
        joint = search.scores(step, shortest[rows // k])  # (B'*K, V)
        total = (scores.view(-1, 1) + joint).view(-1, k * v)  # (B'*K, V) -> (B', K*V)
        weights = search.state.weights  # (B'*K, T')
        if coverage is not None:
            coverage = coverage + weights.float()
        history.attended(weights, rows, b * k, config.keep_attention)
        _collect_finished(total, scores, step, longest, active, stopped, coverage, finished, config, v, vocab.eos_id)
        stopped[active] |= (
            (finished.count[active] >= k) | (step >= longest[active]) | finished.ended(active, step, config)
        )
        if step == last_step:
            break
        going = _going(stopped, active, step, looks)
        if going is not None and going.shape[0] == 0:
            break
        scores, parents, tokens = _extend(total, going, k, vocab.eos_id)
        search.state = search.state.select(parents)
        search.advance(parents, tokens)
        if coverage is not None:
            coverage = coverage.index_select(0, parents)
        if going is not None:  # some utterances stopped: they leave the batch
            search.leave(going, _rows(going, k))  # their hypotheses' positions in this step's batch
            active = active[going]
        parent_rows, rows = rows[parents], _rows(active, k)
        history.extended(parent_rows, tokens, rows, b * k)
    return history.best(finished, encoded_lengths, vocab)


def _extend(
    total: torch.Tensor, going: torch.Tensor | None, k: int, eos_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best K extensions other than EOS of each utterance that goes on (`going`: positions in
    the batch; None: all), from the scores (B', K*V) of all: their scores (B'', K), and the rows of
    their parents in this step's batch and their tokens, (B''*K,) each."""
    if going is not None:
        total = total.index_select(0, going)
    v = total.shape[1] // k
    total.view(-1, k, v)[:, :, eos_id] = -math.inf
    scores, index = total.topk(k, dim=-1)  # (B'', K)
    positions = torch.arange(total.shape[0], device=total.device) if going is None else going
    parents = (torch.div(index, v, rounding_mode="floor") + positions[:, None] * k).view(-1)
    return scores, parents, (index % v).view(-1)


def _going(stopped: torch.Tensor, active: torch.Tensor, step: int, looks: int) -> torch.Tensor | None:
    """Positions in `active` (B',) of the utterances that go on after `step`, looked at every
    `looks` steps; None when all of them do (or this step does not look)."""
    if step % looks:
        return None
    going = (~stopped[active]).nonzero()[:, 0]
    return None if going.shape[0] == active.shape[0] else going


def _collect_finished(
    total: torch.Tensor,
    scores: torch.Tensor,
    step: int,
    longest: torch.Tensor,
    active: torch.Tensor,
    stopped: torch.Tensor,
    coverage: torch.Tensor | None,
    finished: Finished,
    config: SearchConfig,
    v: int,
    eos: int,
) -> None:
    """Add to `finished` the hypotheses that end here, for the utterances not yet stopped: EOS
    extensions ranking within the top K of their utterance's (B', K*V) `total`, and every live
    hypothesis of an utterance at its maximum length (`longest` (B,)) with its score so far
    (`scores` (B', K)); ranked by length and by the frames their attention `coverage` (B'*K, T')
    covers."""
    k = scores.shape[1]
    kth = total.topk(k, dim=-1).values[:, -1:]  # (B', 1) the K-th best extension
    eos_scores = total.view(-1, k, v)[:, :, eos]  # (B', K)
    ending = (eos_scores >= kth) & torch.isfinite(eos_scores)
    at_limit = (step >= longest[active])[:, None] & torch.isfinite(scores)
    log_prob = torch.where(ending, eos_scores, scores)
    ranked = log_prob / length_penalty(step, config)
    if coverage is not None:
        covered = (coverage > 0.5).sum(-1).view(-1, k).float()  # (B', K) frames each hypothesis covered
        ranked = ranked + config.coverage_penalty * covered
    rows = _rows(active, k).view(-1, k)  # (B', K) history rows
    finished.add(active, (ending | at_limit) & ~stopped[active, None], log_prob, ranked, step, rows)
