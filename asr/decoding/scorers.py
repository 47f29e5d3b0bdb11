"""Scorers: the speller's log-probabilities joined with CTC prefix scores (Watanabe et al. 2017)
and an external character LM (shallow fusion), for N hypotheses at once."""

from __future__ import annotations

import torch

from asr.decoding.config import LanguageModel, SearchConfig
from asr.text import Vocabulary


class CTCPrefixScorer:
    """Vectorised CTC prefix scores for N hypotheses at once (Watanabe et al. 2017, Algorithm 2).

    Keeps, for every hypothesis h, the log-probabilities r_n(t), r_b(t) that the first t
    frames emit h ending in a non-blank or a blank. `score(candidates)` gives the prefix
    score log p(h + c, ...) of extending each h by each candidate c (eos: the score of the
    complete h); it needs no recursion, only a sum over frames. `advance` then runs the
    recursion for the extensions the search chose, not for every candidate, and runs it
    over all frames at once: the forward variables are first-order linear recurrences,
    which cumulative sums in log space solve (in float64, so that sums over a thousand
    frames keep their precision), so a step costs a few tensor operations whatever the
    number of frames (no loop over frames: no launch per frame on a GPU).
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

    def _phi(self, r_n: torch.Tensor, r_b: torch.Tensor, last: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(T, N) forward variables of prefixes ending in `last` (N,), (N, C) tokens -> phi (T, N, C): the
        probability of the prefix before each token, where a repeated last token needs a blank between."""
        repeat = (tokens == last[:, None])[None]  # (1, N, C)
        return torch.where(repeat, r_b[..., None], torch.logaddexp(r_n, r_b)[..., None])

    def score(self, candidates: torch.Tensor, length: int) -> torch.Tensor:
        """(N, C) candidate ids for hypotheses of `length` tokens -> prefix scores (N, C): the sum over
        the frame t where c is first emitted of phi(t - 1) x(t), and x(0) for an empty h. Frames
        before `length` cannot emit c after `length` tokens (phi is -inf there), so the sum skips them."""
        t, n, _ = self.x.shape
        start = max(1, length)
        x = torch.gather(self.x[start:], 2, candidates[None].expand(max(0, t - start), n, -1))  # (T - start, N, C)
        phi = self._phi(self.r_n[start - 1 : -1], self.r_b[start - 1 : -1], self.last, candidates)
        psi = torch.logsumexp(phi + x, dim=0)  # (N, C); -inf when no frame is left
        if length == 0:  # h is empty: c may be emitted first at frame 0
            psi = torch.logaddexp(psi, self.x[0].gather(1, candidates))
        end = (self.lengths - 1).clamp(min=0)
        final = torch.logaddexp(self.r_n, self.r_b)[end, torch.arange(n, device=end.device)]  # (N,) complete h
        return torch.where(candidates == self.eos, final[:, None], psi)

    def advance(self, parents: torch.Tensor, tokens: torch.Tensor, scores: torch.Tensor, length: int) -> None:
        """Continue with hypotheses `parents` (N',) of `length` tokens, each extended by its token in
        `tokens` (N',) whose prefix score was `scores` (N',): their forward variables r_n, r_b."""
        x = self.x[:, parents, tokens]  # (T, N') emissions of the new last tokens
        phi = self._phi(self.r_n[:, parents], self.r_b[:, parents], self.last[parents], tokens[:, None])[..., 0]
        first = torch.where(self.last[parents] < 0, x[0], torch.full_like(x[0], float("-inf")))  # r_n(0)
        valid = torch.arange(x.shape[0], device=x.device)[:, None] < self.lengths[parents][None, :]  # (T, N')
        self.r_n, self.r_b = _forward_variables(x, self.x[:, parents, self.blank], phi, first, max(1, length), valid)
        self.prefix = scores
        self.last = tokens

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the emissions of rows `rows` only (utterances that ended leave the batch).

        The recursion state (r_n, r_b, prefix, last) is already in the new order: `advance`
        selects it by parent."""
        self.x = self.x.index_select(1, rows)
        self.lengths = self.lengths.index_select(0, rows)


def _forward_variables(
    x: torch.Tensor, blank: torch.Tensor, phi: torch.Tensor, first: torch.Tensor, start: int, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """r_n, r_b (T, N) of the prefixes h + c, from the emissions x (T, N) of c and `blank` (T, N), phi
    (T, N) of h, r_n(0) = `first` (N,), over the frames from `start` on (before it both are -inf but
    r_n(0)), and -inf for r_n on frames not `valid` (T, N) (past an utterance's end):

        r_n(t) = (r_n(t-1) + phi(t-1)) x(t),   r_b(t) = (r_b(t-1) + r_n(t-1)) blank(t)

    in probability terms. With X(t) the product of x from `start` to t, the first is
    r_n(t) = X(t) (r_n(start-1) + sum_{u<t} phi(u) / X(u)): a cumulative sum, here in log
    space (cumsum and logcumsumexp), likewise the second; all in float64, since X falls by
    thousands of nats over a long utterance and the terms are taken apart again.
    """
    t = x.shape[0]
    minus_inf = torch.full_like(x, float("-inf"))
    if start >= t:  # no frame left to emit c on after the first
        return torch.cat([first[None], minus_inf[1:]]), minus_inf
    x, blank, phi, first = x.double(), blank.double(), phi.double(), first.double()
    emitted = torch.cumsum(x[start:], dim=0)  # (T - start, N): log X(t) for t >= start
    before = torch.cat([torch.zeros_like(emitted[:1]), emitted[:-1]])  # log X(u) for u = start-1 .. T-2, X(start-1)=1
    # past the end log X is -inf: those frames are overwritten below, and nothing earlier reads them
    r_n = emitted + torch.logaddexp(first[None], torch.logcumsumexp(phi[start - 1 : -1] - before, dim=0))
    r_n = torch.cat([minus_inf[: start - 1].double(), first[None], r_n]).masked_fill(~valid, float("-inf"))
    kept = torch.cumsum(blank[start:], dim=0)  # log of the product of blank emissions from start
    kept_before = torch.cat([torch.zeros_like(kept[:1]), kept[:-1]])
    r_b = kept + torch.logcumsumexp(r_n[start - 1 : -1] - kept_before, dim=0)  # r_b(start - 1) is -inf
    r_b = torch.cat([minus_inf[:start].double(), r_b])
    return r_n.to(minus_inf.dtype), r_b.to(minus_inf.dtype)


class JointScorer:
    """The scores a search ranks by: (1 - w) x attention + w x CTC prefix score (for the best
    `ctc_candidates` tokens and EOS; the rest cannot be chosen), plus `lm_weight` x the LM and
    `length_bonus` for every token but EOS.

    Call it once per step with the speller's log-probabilities; then `advance` with the
    hypotheses chosen, and `keep` when utterances leave the batch.
    """

    def __init__(
        self,
        ctc_log_probs: torch.Tensor | None,
        encoded_lengths: torch.Tensor,
        vocab: Vocabulary,
        config: SearchConfig,
        lm: LanguageModel | None = None,
    ) -> None:
        """`ctc_log_probs` (N, T', V) for the N hypotheses (None: no CTC), `encoded_lengths` (N,)."""
        n, device = encoded_lengths.shape[0], encoded_lengths.device
        self.config, self.vocab = config, vocab
        self.ctc = None
        if ctc_log_probs is not None and config.ctc_weight > 0:
            self.ctc = CTCPrefixScorer(ctc_log_probs, encoded_lengths, vocab.blank_id, vocab.eos_id)
        self.lm = lm if lm is not None and config.lm_weight > 0 else None
        self.lm_state = self.lm.initial_state(n, device) if self.lm is not None else None
        self._candidates: torch.Tensor | None = None
        self._ctc_scores: torch.Tensor | None = None
        self._step = 0

    def __call__(self, att_logp: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        """(N, V) attention log-probabilities (forbidden tokens at -inf), (N,) the tokens just fed,
        hypotheses of `step` characters -> (N, V) joint scores."""
        config, eos = self.config, self.vocab.eos_id
        scores = att_logp
        self._step = step
        if self.ctc is not None:
            others = att_logp.clone()
            others[:, eos] = float("-inf")
            best = others.topk(min(config.ctc_candidates, att_logp.shape[1] - 1), dim=-1).indices  # (N, C)
            self._candidates = torch.cat([best, best.new_full((best.shape[0], 1), eos)], dim=1)  # (N, C + 1)
            self._ctc_scores = self.ctc.score(self._candidates, step)
            joint = (1 - config.ctc_weight) * att_logp.gather(1, self._candidates) + config.ctc_weight * (
                self._ctc_scores - self.ctc.prefix[:, None]
            )
            scores = torch.full_like(att_logp, float("-inf")).scatter(1, self._candidates, joint)
        if self.lm is not None:
            lm_logp, self.lm_state = self.lm.score(self.lm_state, tokens)
            scores = scores + config.lm_weight * lm_logp.float()
        if config.length_bonus:
            scores = scores + config.length_bonus
            scores[:, eos] -= config.length_bonus
        return scores

    def advance(self, parents: torch.Tensor, tokens: torch.Tensor) -> None:
        """Go on with hypotheses `parents` (N',) (rows of the last call) extended by `tokens` (N',)."""
        if self.ctc is not None and self._candidates is not None and self._ctc_scores is not None:
            choice = self._candidates.index_select(0, parents).eq(tokens[:, None]).float().argmax(-1)  # (N',)
            self.ctc.advance(parents, tokens, self._ctc_scores[parents, choice], self._step)
        if self.lm is not None:
            self.lm_state = self.lm.reorder(self.lm_state, parents)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the CTC emissions of `rows` only (rows of the last call whose utterances go on)."""
        if self.ctc is not None:
            self.ctc.keep(rows)
