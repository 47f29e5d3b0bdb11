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
        self._ctc_step: tuple | None = None

    def __call__(self, att_logp: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        """(N, V) attention log-probabilities (forbidden tokens at -inf), (N,) the tokens just fed,
        hypotheses of `step` characters -> (N, V) joint scores."""
        config, eos = self.config, self.vocab.eos_id
        scores = att_logp
        if self.ctc is not None:
            others = att_logp.clone()
            others[:, eos] = float("-inf")
            best = others.topk(min(config.ctc_candidates, att_logp.shape[1] - 1), dim=-1).indices  # (N, C)
            self._candidates = torch.cat([best, best.new_full((best.shape[0], 1), eos)], dim=1)  # (N, C + 1)
            ctc_scores, cache = self.ctc.score(self._candidates, step)
            self._ctc_step = (cache, ctc_scores)
            joint = (1 - config.ctc_weight) * att_logp.gather(1, self._candidates) + config.ctc_weight * (
                ctc_scores - self.ctc.prefix[:, None]
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
        if self.ctc is not None and self._candidates is not None and self._ctc_step is not None:
            choice = self._candidates.index_select(0, parents).eq(tokens[:, None]).float().argmax(-1)
            cache, ctc_scores = self._ctc_step
            self.ctc.advance(parents, choice, tokens, cache, ctc_scores)
        if self.lm is not None:
            self.lm_state = self.lm.reorder(self.lm_state, parents)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the CTC emissions of `rows` only (rows of the last call whose utterances go on)."""
        if self.ctc is not None:
            self.ctc.keep(rows)
