"""Greedy and beam search over a LAS model, batched over utterances (x beams).

Both searches share one signature, `search(model, features, lengths, vocab, config,
lm=None) -> list[Hypothesis]` (the best hypothesis of each utterance), and are pure
functions of their inputs. Beam search expands all utterances x beams at once with
tensor operations; only finished hypotheses are collected in Python lists. In both,
an utterance that has stopped leaves the batch, so it costs nothing afterwards. Optional
joint CTC prefix scoring (Watanabe et al. 2017) and shallow fusion with an external
character LM shape the scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from asr.errors import UserError
from asr.model import LAS, Memory, SpellerState
from asr.text import Vocabulary


class DecodingError(UserError):
    """Decoding settings that cannot be used (with this model)."""


@dataclass(frozen=True)
class SearchConfig:
    """Decoding settings; every entry point takes them (the beam size, above all).

    Lengths are in output characters as a ratio of listener frames. EOS is allowed
    only when log p(eos) >= `eos_threshold` x the best log-probability of the step
    (log-probabilities are negative, so 1.5 allows an EOS up to 1.5 times less likely
    in log terms). Final scores are divided by length ** `length_normalization`; the
    coverage penalty adds `coverage_penalty` x the number of listener frames whose
    total attention exceeds 0.5.
    """

    beam: int = 10
    max_length_ratio: float = 1.5
    min_length_ratio: float = 0.0
    length_normalization: float = 1.0
    eos_threshold: float = 1.5
    coverage_penalty: float = 0.0
    ctc_weight: float = 0.0
    ctc_candidates: int = 20
    """CTC prefix scores are computed for this many best attention candidates per hypothesis (and EOS)."""
    lm_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.beam < 1:
            raise ValueError(f"beam must be at least 1, got {self.beam}")
        if self.max_length_ratio <= 0 or not 0 <= self.min_length_ratio <= self.max_length_ratio:
            raise ValueError("need 0 <= min_length_ratio <= max_length_ratio and max_length_ratio > 0")
        if not 0 <= self.ctc_weight <= 1 or self.lm_weight < 0 or self.eos_threshold < 1:
            raise ValueError("need 0 <= ctc_weight <= 1, lm_weight >= 0 and eos_threshold >= 1")
        if self.ctc_candidates < 1:
            raise ValueError(f"ctc_candidates must be at least 1, got {self.ctc_candidates}")


@dataclass(frozen=True)
class Hypothesis:
    """A decoded utterance: its text, token ids (no sos/eos), the search's ranking score
    (log-probability after length normalisation and penalties), the log-probability
    itself summed over the tokens and <eos> (joint with CTC and the LM where they were
    used), and attention weights (len(tokens) + 1, T') over the listener frames, the last
    row for <eos>."""

    text: str
    tokens: tuple[int, ...]
    score: float
    attention: torch.Tensor
    log_prob: float = -math.inf

    @property
    def avg_log_prob(self) -> float:
        """Log-probability per output token, <eos> included."""
        return self.log_prob / (len(self.tokens) + 1)


class LanguageModel(Protocol):
    """What shallow fusion needs from an external character LM over the same vocabulary."""

    def initial_state(self, batch: int, device: torch.device) -> Any: ...

    def score(self, state: Any, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(state, previous tokens (N,)) -> log-probabilities (N, vocab) of the next token, new state."""
        ...

    def reorder(self, state: Any, index: torch.Tensor) -> Any: ...


def _max_lengths(encoded_lengths: torch.Tensor, config: SearchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) listener frames -> fewest and most characters (EOS not counted) of each hypothesis.

    An utterance without any listener frame (too short for one) may only end at once."""
    longest = (encoded_lengths.float() * config.max_length_ratio).floor().long().clamp(min=1)
    longest = longest.masked_fill(encoded_lengths == 0, 0)
    shortest = (encoded_lengths.float() * config.min_length_ratio).floor().long()
    return shortest, longest


def _forbidden(vocab: Vocabulary, size: int, device: torch.device) -> torch.Tensor:
    """(vocab,) bool: tokens a hypothesis may never produce (blank, pad, sos)."""
    forbidden = torch.zeros(size, dtype=torch.bool, device=device)
    forbidden[[vocab.blank_id, vocab.pad_id, vocab.sos_id]] = True
    return forbidden


def _eos_blocked(logp: torch.Tensor, step: int, shortest: torch.Tensor, config: SearchConfig, eos: int) -> torch.Tensor:
    """(N, V) log-probs (the scores the search ranks by) -> (N,) True where EOS is not allowed at this step.

    EOS is never blocked where it is the only extension with a finite score, so a
    hypothesis always has a way to end."""
    others = logp.clone()
    others[:, eos] = float("-inf")
    best_other = others.max(dim=-1).values
    blocked = (logp[:, eos] < config.eos_threshold * best_other) | (step < shortest)
    return blocked & torch.isfinite(best_other)


def _scatter_rows(values: torch.Tensor, rows: torch.Tensor, size: int, fill: float = 0) -> torch.Tensor:
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
) -> list[Hypothesis]:
    """The most likely character at each step, for a batch (B, T, D), (B,); one hypothesis each.

    The EOS threshold does not apply (greedy takes EOS whenever it is the best token).
    An utterance leaves the batch once it has ended, so it costs nothing afterwards.
    """
    encoded, encoded_lengths = model.encode(features, lengths)
    memory = model.speller.memory(encoded, encoded_lengths)
    b, device = encoded.shape[0], encoded.device
    shortest, longest = _max_lengths(encoded_lengths, config)
    forbidden = _forbidden(vocab, model.config.vocab_size, device)
    state = model.speller.initial_state(memory)
    lm_state = lm.initial_state(b, device) if lm is not None and config.lm_weight > 0 else None
    active = torch.arange(b, device=device)  # utterances still decoded
    tokens = torch.full((b,), vocab.sos_id, dtype=torch.long, device=device)
    scores = torch.zeros(b, device=device)
    steps, weights = [], []
    for step in range(int(longest.max()) + 1):  # step = characters so far; the last step can only end
        logits, state = model.speller.step(state, tokens, memory)
        logp = torch.log_softmax(logits.float(), dim=-1).masked_fill(forbidden, float("-inf"))
        if lm_state is not None:
            lm_logp, lm_state = lm.score(lm_state, tokens)
            logp = logp + config.lm_weight * lm_logp
        logp[:, vocab.eos_id] = logp[:, vocab.eos_id].masked_fill(step < shortest[active], float("-inf"))
        best, tokens = logp.max(dim=-1)
        at_limit = step >= longest[active]
        tokens = torch.where(at_limit, torch.full_like(tokens, vocab.eos_id), tokens)
        scores.index_add_(0, active, torch.where(at_limit, torch.zeros_like(best), best))
        steps.append(_scatter_rows(tokens, active, b, fill=vocab.eos_id))
        weights.append(_scatter_rows(state.weights, active, b))
        going = (tokens != vocab.eos_id).nonzero()[:, 0]  # (B',) rows that continue
        if going.shape[0] == 0:
            break
        if going.shape[0] < tokens.shape[0]:  # some utterances ended: drop them from the batch
            state, memory, tokens, active = state.select(going), memory.select(going), tokens[going], active[going]
            if lm_state is not None:
                lm_state = lm.reorder(lm_state, going)
    ids = torch.stack(steps, 1).tolist()  # (B, L)
    attention = torch.stack(weights, 1).float().cpu()  # (B, L, T')
    hypotheses = []
    for i in range(b):
        out = ids[i][: ids[i].index(vocab.eos_id)] if vocab.eos_id in ids[i] else ids[i]
        log_prob = float(scores[i])
        score = log_prob / (len(out) + 1) ** config.length_normalization
        frames = int(encoded_lengths[i])
        weights = attention[i, : len(out) + 1, :frames]
        hypotheses.append(Hypothesis(vocab.decode(out), tuple(out), score, weights, log_prob))
    return hypotheses


class CTCPrefixScorer:
    """Vectorised CTC prefix scores for N hypotheses at once (Watanabe et al. 2017, Algorithm 2).

    Keeps, for every hypothesis h, the log-probabilities r_n(t), r_b(t) that the first t
    frames emit h ending in a non-blank or a blank. `score(candidates)` gives the prefix
    score log p(h + c, ...) of extending each h by each candidate c; eos gets the score
    of the complete sequence.
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, blank: int, eos: int) -> None:
        """`log_probs` (N, T, V) CTC log-probabilities, `lengths` (N,) valid frames."""
        n, t, _ = log_probs.shape
        self.blank, self.eos = blank, eos
        self.lengths = lengths
        frames = torch.arange(t, device=log_probs.device)
        valid = frames[None, :] < lengths[:, None]  # (N, T)
        # beyond an utterance's end only blanks are emitted, so scores stay constant there
        self.x = log_probs.masked_fill(~valid[..., None], float("-inf"))
        self.x[..., blank] = log_probs[..., blank].masked_fill(~valid, 0.0)
        self.x = self.x.transpose(0, 1)  # (N, T, V) -> (T, N, V): time-major for the recursion
        self.r_n = torch.full((t, n), float("-inf"), device=log_probs.device)
        self.r_b = torch.cumsum(self.x[:, :, blank], dim=0)  # the empty prefix: blanks only
        self.prefix = torch.zeros(n, device=log_probs.device)
        self.last = torch.full((n,), -1, dtype=torch.long, device=log_probs.device)

    def score(self, candidates: torch.Tensor, length: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(N, C) candidate ids for hypotheses of `length` tokens -> prefix scores (N, C) and the
        new (r_n, r_b) of shape (T, N, C). Frames before `length` cannot end h + c, so the
        recursion starts there."""
        t, n, _ = self.x.shape
        x = torch.gather(self.x, 2, candidates[None].expand(t, n, -1))  # (T, N, C) emission of each candidate
        total = torch.logaddexp(self.r_n, self.r_b)  # (T, N)
        # phi: probability of the prefix before c, where a repeated last token needs a blank between
        repeat = (candidates == self.last[:, None])[None]  # (1, N, C)
        phi = torch.where(repeat, self.r_b[..., None], total[..., None])  # (T, N, C)
        r_n = torch.full_like(x, float("-inf"))
        r_b = torch.full_like(x, float("-inf"))
        empty = (self.last < 0)[:, None]  # (N, 1): h is empty, so c may start at frame 0
        r_n[0] = torch.where(empty, x[0], torch.full_like(x[0], float("-inf")))
        for frame in range(max(1, length), t):
            r_n[frame] = torch.logaddexp(r_n[frame - 1], phi[frame - 1]) + x[frame]
            r_b[frame] = torch.logaddexp(r_b[frame - 1], r_n[frame - 1]) + self.x[frame, :, self.blank, None]
        # prefix score: sum over the frame where c is first emitted
        start = torch.where(empty, x[0], torch.full_like(x[0], float("-inf")))
        psi = torch.logsumexp(torch.cat([start[None], phi[:-1] + x[1:]], dim=0), dim=0)  # (N, C)
        end = (self.lengths - 1).clamp(min=0)
        final = total[end, torch.arange(n, device=end.device)]  # (N,) the complete h at the last frame
        psi = torch.where(candidates == self.eos, final[:, None], psi)
        return psi, (r_n, r_b)

    def advance(
        self,
        parents: torch.Tensor,
        choice: torch.Tensor,
        tokens: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor],
        scores: torch.Tensor,
    ) -> None:
        """Continue with hypotheses `parents` (N,) extended by their candidate column `choice` (N,),
        whose token is `tokens` (N,); `cache` and `scores` come from the last `score` call."""
        r_n, r_b = cache
        self.r_n = r_n[:, parents, choice]
        self.r_b = r_b[:, parents, choice]
        self.prefix = scores[parents, choice]
        self.last = tokens

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the emissions of rows `rows` only (utterances that ended leave the batch).

        The recursion state (r_n, r_b, prefix, last) is already in the new order: `advance`
        selects it by parent."""
        self.x = self.x.index_select(1, rows)
        self.lengths = self.lengths.index_select(0, rows)


@torch.no_grad()
def beam_search(
    model: LAS,
    features: torch.Tensor,
    lengths: torch.Tensor,
    vocab: Vocabulary,
    config: SearchConfig,
    lm: LanguageModel | None = None,
) -> list[Hypothesis]:
    """Beam search over a batch (B, T, D), (B,); returns the best hypothesis of each utterance.

    All B x K hypotheses advance together. At each step the K x V extensions of an
    utterance are ranked; those ending in EOS that rank within the top K join that
    utterance's finished list, the best K others continue. An utterance stops when it
    has K finished hypotheses or reaches its maximum length, and then leaves the batch,
    so it costs nothing afterwards; the search stops when all have stopped.
    """
    k = config.beam
    encoded, encoded_lengths = model.encode(features, lengths)
    b, device = encoded.shape[0], encoded.device
    v = model.config.vocab_size
    shortest, longest = _max_lengths(encoded_lengths, config)
    active = torch.arange(b, device=device)  # (B',) utterances still searched
    rows = _rows(active, k)  # (B'*K,) utterance * K + beam: each hypothesis's row in the history
    flat = rows // k  # (B*K,) utterance of each hypothesis
    memory: Memory = model.speller.memory(encoded, encoded_lengths)  # (B', ...): its K hypotheses share it
    state: SpellerState = model.speller.initial_state(memory).select(flat)
    ctc = (
        CTCPrefixScorer(
            model.ctc_log_probs(encoded).index_select(0, flat), encoded_lengths[flat], vocab.blank_id, vocab.eos_id
        )
        if config.ctc_weight > 0
        else None
    )
    lm_state = lm.initial_state(b * k, device) if lm is not None and config.lm_weight > 0 else None
    forbidden = _forbidden(vocab, v, device)
    tokens = torch.full((b * k,), vocab.sos_id, dtype=torch.long, device=device)
    scores = torch.full((b, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis per utterance at the start
    finished: list[list[tuple[float, int, int]]] = [[] for _ in range(b)]  # (score, step, row)
    history_tokens, history_parents, history_weights = [], [], []
    for step in range(int(longest.max()) + 1):  # step = characters so far
        searched = active.tolist()
        n = len(searched)
        logits, state = model.speller.step(state, tokens, memory)
        att_logp = torch.log_softmax(logits.float(), dim=-1).masked_fill(forbidden, float("-inf"))  # (B'*K, V)
        logp = att_logp
        if ctc is not None:
            # CTC rescoring of the best candidates and EOS only; the rest cannot be chosen
            others = att_logp.clone()
            others[:, vocab.eos_id] = float("-inf")
            best = others.topk(min(config.ctc_candidates, v - 1), dim=-1).indices  # (B'*K, C)
            candidates = torch.cat([best, best.new_full((best.shape[0], 1), vocab.eos_id)], dim=1)  # (B'*K, C+1)
            ctc_scores, ctc_cache = ctc.score(candidates, step)
            joint = (1 - config.ctc_weight) * att_logp.gather(1, candidates) + config.ctc_weight * (
                ctc_scores - ctc.prefix[:, None]
            )
            logp = torch.full_like(att_logp, float("-inf")).scatter(1, candidates, joint)
        if lm_state is not None:
            lm_logp, lm_state = lm.score(lm_state, tokens)
            logp = logp + config.lm_weight * lm_logp.float()
        blocked = _eos_blocked(logp, step, shortest[rows // k], config, vocab.eos_id)  # on the ranked scores
        logp[:, vocab.eos_id] = logp[:, vocab.eos_id].masked_fill(blocked, float("-inf"))
        total = (scores.view(-1, 1) + logp).view(n, k * v)  # (B'*K, V) -> (B', K*V)
        kth = total.topk(k, dim=-1).values[:, -1:]  # (B', 1) the K-th best extension
        eos_scores = total.view(n, k, v)[:, :, vocab.eos_id]  # (B', K)
        ending = (eos_scores >= kth) & torch.isfinite(eos_scores)
        at_limit = (step >= longest[active])[:, None] & torch.isfinite(scores)
        for position, beam in (ending | at_limit).nonzero().tolist():
            value = float(eos_scores[position, beam]) if ending[position, beam] else float(scores[position, beam])
            finished[searched[position]].append((value, step, searched[position] * k + beam))
        history_weights.append(_scatter_rows(state.weights, rows, b * k))
        counts = torch.tensor([len(finished[u]) for u in searched], device=device)
        going = (~((counts >= k) | (step >= longest[active]))).nonzero()[:, 0]  # (B'',) utterances that go on
        if going.shape[0] == 0:
            break
        total = total.index_select(0, going)
        total.view(-1, k, v)[:, :, vocab.eos_id] = float("-inf")
        best, index = total.topk(k, dim=-1)  # (B'', K)
        parents = (torch.div(index, v, rounding_mode="floor") + going[:, None] * k).view(-1)  # (B''*K,) positions
        tokens = (index % v).view(-1)
        scores = best
        state = state.select(parents)
        if ctc is not None:
            choice = candidates.index_select(0, parents).eq(tokens[:, None]).float().argmax(-1)  # column of each token
            ctc.advance(parents, choice, tokens, ctc_cache, ctc_scores)
        if lm_state is not None:
            lm_state = lm.reorder(lm_state, parents)
        if going.shape[0] < n:  # some utterances stopped: they leave the batch
            memory = memory.select(going)
            if ctc is not None:
                ctc.keep(_rows(going, k))  # their hypotheses' positions in this step's batch
            active = active[going]
        parent_rows, rows = rows[parents], _rows(active, k)
        history_parents.append(_scatter_rows(parent_rows, rows, b * k))
        history_tokens.append(_scatter_rows(tokens, rows, b * k))
    # the history moves to the host once; tracing hypotheses back is then plain list indexing
    history = (
        torch.stack(history_tokens).tolist() if history_tokens else [],
        torch.stack(history_parents).tolist() if history_parents else [],
        torch.stack(history_weights).float().cpu(),  # (steps, B*K, T')
    )
    return [_best(finished[i], *history, int(encoded_lengths[i]), vocab, config) for i in range(b)]


def _rows(utterances: torch.Tensor, k: int) -> torch.Tensor:
    """(B',) utterance ids -> (B'*K,) their hypotheses' rows (utterance * K + beam) in the history."""
    return (utterances[:, None] * k + torch.arange(k, device=utterances.device)).view(-1)


def _best(
    finished: list[tuple[float, int, int]],
    tokens: list[list[int]],
    parents: list[list[int]],
    weights: torch.Tensor,
    frames: int,
    vocab: Vocabulary,
    config: SearchConfig,
) -> Hypothesis:
    """Trace every finished hypothesis back through the history; return the best after normalisation."""
    best: Hypothesis | None = None
    for score, step, index in finished:
        ids, cursors, cursor = [], [index], index
        for s in range(step - 1, -1, -1):  # tokens[s] was fed at step s + 1, chosen by parent at step s
            ids.append(tokens[s][cursor])
            cursor = parents[s][cursor]
            cursors.append(cursor)
        ids.reverse()
        cursors.reverse()
        attention = weights[torch.arange(step + 1), torch.tensor(cursors), :frames]  # (len + 1, T')
        covered = float((attention.sum(0) > 0.5).sum())
        normalised = score / (len(ids) + 1) ** config.length_normalization + config.coverage_penalty * covered
        if best is None or normalised > best.score:
            best = Hypothesis(vocab.decode(ids), tuple(ids), normalised, attention, score)
    if best is None:
        return Hypothesis("", (), -math.inf, torch.zeros(0, frames))
    return best
