"""Greedy search: the best token at each step, under the same scorers and rules as beam search."""

from __future__ import annotations

import torch

from asr.decoding.config import Hypothesis, LanguageModel, SearchConfig
from asr.decoding.ranking import ranking_score
from asr.decoding.search import FRAME_SECONDS, Search, look_every, scatter_rows
from asr.model import LAS
from asr.text import Vocabulary


@torch.no_grad()
def greedy_search(
    model: LAS,
    features: torch.Tensor,
    lengths: torch.Tensor,
    vocab: Vocabulary,
    config: SearchConfig,
    lm: LanguageModel | None = None,
    frame_seconds: float = FRAME_SECONDS,
) -> list[Hypothesis]:
    """The best token at each step, for a batch (B, T, D) of `frame_seconds` frames, (B,); one
    hypothesis each. An utterance leaves the batch at the first look after it has ended (every step on
    a CPU; every few on a GPU, so that the device is not waited for at each step)."""
    search = Search(model, features, lengths, vocab, config, lm, frame_seconds, width=1)
    encoded_lengths, shortest, longest = search.encoded_lengths, search.shortest, search.longest
    b, device = encoded_lengths.shape[0], search.tokens.device
    looks = look_every(device)
    active = torch.arange(b, device=device)  # utterances in the batch
    stopped = torch.zeros(b, dtype=torch.bool, device=device)  # those that ended, until the next look drops them
    scores = torch.zeros(b, device=device)
    steps, peaks, weights = [], [], []
    keep = config.keep_attention or config.coverage_penalty != 0  # the coverage penalty reads the weights
    for step in range(int(longest.max()) + 1):  # step = characters so far; the last step can only end
        best, tokens = search.scores(step, shortest[active]).max(dim=-1)
        ended = stopped[active] | (step >= longest[active])  # (B',) ended before, or must end now
        tokens = torch.where(ended, torch.full_like(tokens, vocab.eos_id), tokens)
        scores.index_add_(0, active, torch.where(ended, torch.zeros_like(best), best))
        steps.append(scatter_rows(tokens, active, b, fill=vocab.eos_id))
        peaks.append(scatter_rows(search.state.weights.argmax(-1), active, b))
        if keep:
            weights.append(scatter_rows(search.state.weights, active, b))
        stopped[active] |= tokens == vocab.eos_id
        if step % looks:  # no look: every row goes on, one that ended fed a space (what it reads is never kept)
            rows, fed = (
                torch.arange(active.shape[0], device=device),
                tokens.masked_fill(tokens == vocab.eos_id, vocab.space_id),
            )
            search.advance(rows, fed)
            continue
        going = (~stopped[active]).nonzero()[:, 0]  # (B'',) rows that continue
        if going.shape[0] == 0:
            break
        search.advance(going, tokens[going])
        if going.shape[0] < active.shape[0]:  # some utterances ended: drop them from the batch
            search.leave(going, going)
            search.state, active = search.state.select(going), active[going]
    ids = torch.stack(steps, 1).tolist()  # (B, L)
    peak_frames = torch.stack(peaks, 1).cpu()  # (B, L)
    attention = torch.stack(weights, 1).float().cpu() if keep else None  # (B, L, T')
    hypotheses = []
    for i in range(b):
        out = ids[i][: ids[i].index(vocab.eos_id)] if vocab.eos_id in ids[i] else ids[i]
        log_prob = float(scores[i])
        rows = attention[i, : len(out) + 1, : int(encoded_lengths[i])] if attention is not None else None
        score = ranking_score(log_prob, len(out), rows, config)
        rows = rows if config.keep_attention else None
        hypothesis = Hypothesis(vocab.decode(out), tuple(out), score, rows, log_prob, peak_frames[i, : len(out) + 1])
        hypotheses.append(hypothesis)
    return hypotheses
