"""Greedy search: the best token at each step, under the same scorers and rules as beam search."""

from __future__ import annotations

import torch

from asr.decoding.config import Hypothesis, LanguageModel, SearchConfig
from asr.decoding.ranking import ranking_score
from asr.decoding.rules import RepetitionGuard, apply_rules, ctc_for_search, forbidden_tokens, length_limits
from asr.decoding.scorers import JointScorer
from asr.model import LAS
from asr.text import Vocabulary

FRAME_SECONDS = 0.01
"""Seconds per input feature frame when the caller does not say (the default 10 ms hop)."""


def scatter_rows(values: torch.Tensor, rows: torch.Tensor, size: int, fill: float = 0) -> torch.Tensor:
    """(N, ...) values of the hypotheses still searched, at rows `rows` (N,) of all `size` -> (size, ...)."""
    return values.new_full((size, *values.shape[1:]), fill).index_copy_(0, rows, values)


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
    hypothesis each. An utterance leaves the batch once it has ended, so it costs nothing afterwards."""
    encoded, encoded_lengths = model.encode(features, lengths)
    memory = model.speller.memory(encoded, encoded_lengths)
    b, device = encoded.shape[0], encoded.device
    ctc, ctc_characters = ctc_for_search(model, encoded, encoded_lengths, config, vocab.blank_id)
    shortest, longest = length_limits(lengths, encoded_lengths, frame_seconds, config, ctc_characters)
    forbidden = forbidden_tokens(vocab, model.config.vocab_size, device)
    scorer = JointScorer(ctc, encoded_lengths, vocab, config, lm)
    guard = RepetitionGuard.for_search(b, device, config, vocab)
    state = model.speller.initial_state(memory)
    active = torch.arange(b, device=device)  # utterances still decoded
    tokens = torch.full((b,), vocab.sos_id, dtype=torch.long, device=device)
    scores = torch.zeros(b, device=device)
    steps, peaks, weights = [], [], []
    keep = config.keep_attention or config.coverage_penalty != 0  # the coverage penalty reads the weights
    for step in range(int(longest.max()) + 1):  # step = characters so far; the last step can only end
        logits, state = model.speller.step(state, tokens, memory, config.attention_window)
        att_logp = torch.log_softmax(logits.float(), dim=-1).masked_fill(forbidden, float("-inf"))
        joint = apply_rules(scorer(att_logp, tokens, step), step, shortest[active], guard, config, vocab)
        best, tokens = joint.max(dim=-1)
        at_limit = step >= longest[active]
        tokens = torch.where(at_limit, torch.full_like(tokens, vocab.eos_id), tokens)
        scores.index_add_(0, active, torch.where(at_limit, torch.zeros_like(best), best))
        steps.append(scatter_rows(tokens, active, b, fill=vocab.eos_id))
        peaks.append(scatter_rows(state.weights.argmax(-1), active, b))
        if keep:
            weights.append(scatter_rows(state.weights, active, b))
        going = (tokens != vocab.eos_id).nonzero()[:, 0]  # (B',) rows that continue
        if going.shape[0] == 0:
            break
        tokens = tokens[going]
        scorer.advance(going, tokens)
        if guard is not None:
            guard = guard.advance(going, tokens, vocab.space_id)
        if going.shape[0] < active.shape[0]:  # some utterances ended: drop them from the batch
            scorer.keep(going)
            state, memory, active = state.select(going), memory.select(going), active[going]
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
