"""What greedy and beam search share, written once: the set-up (listener output, length limits,
the speller's first state, the scorers and the rules) and each step's joint scores."""

from __future__ import annotations

import torch

from asr.decoding.config import LanguageModel, SearchConfig
from asr.decoding.rules import RepetitionGuard, apply_rules, ctc_for_search, forbidden_tokens, length_limits
from asr.decoding.scorers import JointScorer
from asr.model import LAS
from asr.text import Vocabulary

FRAME_SECONDS = 0.01
"""Seconds per input feature frame when the caller does not say (the default 10 ms hop)."""


def scatter_rows(values: torch.Tensor, rows: torch.Tensor, size: int, fill: float = 0) -> torch.Tensor:
    """(N, ...) values of the hypotheses still searched, at rows `rows` (N,) of all `size` -> (size, ...)."""
    return values.new_full((size, *values.shape[1:]), fill).index_copy_(0, rows, values)


GPU_LOOK_EVERY = 8
"""Steps between a GPU search's looks at which utterances have stopped."""


def look_every(device: torch.device) -> int:
    """Steps between looks at which utterances have stopped: every step on a CPU, where looking
    costs nothing, GPU_LOOK_EVERY on a GPU, where each look waits for the queued work (stopped
    utterances ride along in between, and change nothing)."""
    return 1 if device.type == "cpu" else GPU_LOOK_EVERY


class Search:
    """The hypotheses a search extends, `width` per utterance (1 for greedy, the beam for beam
    search), with what follows them from step to step: the speller's `state`, the `tokens` just
    fed, the `scorer` (attention, CTC prefix, LM) and the repetition `guard`.

    What is fixed per utterance (B,): `encoded_lengths` (listener frames), `shortest` and
    `longest` (the fewest and most characters of its hypotheses). `memory` holds the listener
    output of the utterances still searched; the search drops those that leave the batch from
    `memory` and `state` itself.
    """

    def __init__(
        self,
        model: LAS,
        features: torch.Tensor,
        lengths: torch.Tensor,
        vocab: Vocabulary,
        config: SearchConfig,
        lm: LanguageModel | None,
        frame_seconds: float,
        width: int,
    ) -> None:
        """A batch (B, T, D) of `frame_seconds` frames, (B,) -> B x `width` hypotheses, each
        starting with <sos>."""
        self.model, self.vocab, self.config = model, vocab, config
        encoded, encoded_lengths = model.encode(features, lengths)
        b, device = encoded.shape[0], encoded.device
        ctc, ctc_characters = ctc_for_search(model, encoded, encoded_lengths, config, vocab.blank_id)
        self.encoded_lengths = encoded_lengths
        self.shortest, self.longest = length_limits(lengths, encoded_lengths, frame_seconds, config, ctc_characters)
        self.memory = model.speller.memory(encoded, encoded_lengths)  # (B, ...): an utterance's hypotheses share it
        utterance = torch.arange(b, device=device).repeat_interleave(width)  # (B*width,) each hypothesis's utterance
        self.state = model.speller.initial_state(self.memory).select(utterance)
        ctc = ctc.index_select(0, utterance) if ctc is not None else None
        self.scorer = JointScorer(ctc, encoded_lengths[utterance], vocab, config, lm)
        self.guard = RepetitionGuard.for_search(b * width, device, config, vocab)
        self.forbidden = forbidden_tokens(vocab, model.config.vocab_size, device)
        self.tokens = torch.full((b * width,), vocab.sos_id, dtype=torch.long, device=device)

    def scores(self, step: int, shortest: torch.Tensor) -> torch.Tensor:
        """Feed `tokens` to the speller -> (N, V) joint scores of extending each hypothesis of `step`
        characters (whose utterance allows at least `shortest` (N,) characters) by each token,
        every rule applied; the ranking uses these same scores."""
        config = self.config
        logits, self.state = self.model.speller.step(self.state, self.tokens, self.memory, config.attention_window)
        att_logp = torch.log_softmax(logits.float(), dim=-1).masked_fill(self.forbidden, float("-inf"))
        return apply_rules(self.scorer(att_logp, self.tokens, step), step, shortest, self.guard, config, self.vocab)

    def advance(self, parents: torch.Tensor, tokens: torch.Tensor) -> None:
        """Go on with hypotheses `parents` (N',) (rows of the last `scores`) extended by `tokens` (N',):
        the scorer and the guard follow them; the speller's state is the caller's to select."""
        self.tokens = tokens
        self.scorer.advance(parents, tokens)
        if self.guard is not None:
            self.guard = self.guard.advance(parents, tokens, self.vocab.space_id)

    def leave(self, going: torch.Tensor, rows: torch.Tensor) -> None:
        """Only the utterances at positions `going` (B'',) of the batch go on, their hypotheses at
        `rows` of the last `scores`: the others leave `memory` and the scorer."""
        self.memory = self.memory.select(going)
        self.scorer.keep(rows)
