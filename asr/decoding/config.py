"""What a search is told (`SearchConfig`), what it returns (`Hypothesis`), and what an external
language model must offer (`LanguageModel`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the command line reads SearchConfig's flags without loading torch
    import torch

from asr.errors import UserError


class DecodingError(UserError):
    """Decoding settings that cannot be used (with this model)."""


MAX_BEAM = 1000
"""The widest beam: a character model gains nothing past a few dozen, and a beam of 100,000 kept
1.7 s of audio decoding for minutes."""


@dataclass(frozen=True)
class SearchConfig:
    """Decoding settings; every entry point takes them (the beam size, above all).

    Lengths: a hypothesis holds at most `max_chars_per_second` characters per second of
    audio (and at least `min_chars_per_second`), so a search cannot run on past what the
    audio can hold; `max_length_ratio` / `min_length_ratio` also bound it in characters per
    listener frame (ESPnet's maxlenratio / minlenratio; null: no such bound); and, with
    `max_ctc_length_ratio` > 0 (a model with a CTC head), at most that many times the characters
    of the CTC branch's greedy path plus `ctc_length_margin`: a bound from what the listener
    heard, which a search looping on a phrase reaches long before the duration's. EOS is allowed
    only when its score is at least `eos_threshold` times the best other score of the step
    (scores are negative, so 1.5 allows an EOS up to 1.5 times less likely in log terms).
    Scores join the attention with CTC prefix scores
    (`ctc_weight`) and an external LM (`lm_weight`); `length_bonus` is added for every
    character (not EOS), which keeps an LM from favouring short hypotheses. A hypothesis
    may not say the same word more than `max_word_repeats` times in a row (0: no limit).
    `end_detect` stops an utterance's search once the hypotheses that ended in the last
    `end_window` steps are all worse than its best by more than `end_margin` (ESPnet's end
    detection). Final scores are divided by length ** `length_normalization`; the coverage
    penalty adds `coverage_penalty` x the number of listener frames whose total attention
    exceeds 0.5. `attention_window` > 0 scores only that many listener frames a step, from a
    quarter of them before the previous step's peak (additive and location attention): an
    approximation that makes the attention's cost W/T of the full one; 0 scores every frame.
    `keep_attention`: hypotheses carry their attention weights (for plots and alignments);
    otherwise only each step's peak frame, which keeps a long batch's search history small.

    A field with a `help` in its metadata is also a flag of `asr transcribe` and `asr evaluate`
    (`beam` -> `--beam`), generated from it; `minimum` bounds a whole-number flag as it is parsed.
    """

    beam: int = field(default=10, metadata={"help": "beam size; 1 is greedy", "minimum": 1, "maximum": MAX_BEAM})
    max_chars_per_second: float = 25.0
    min_chars_per_second: float = 0.0
    max_length_ratio: float | None = None
    min_length_ratio: float = 0.0
    max_ctc_length_ratio: float = 0.0
    ctc_length_margin: int = 5
    length_normalization: float = 1.0
    eos_threshold: float = 1.5
    coverage_penalty: float = 0.0
    ctc_weight: float = field(default=0.0, metadata={"help": "joint CTC weight"})
    ctc_candidates: int = 20
    """CTC prefix scores are computed for this many best attention candidates per hypothesis (and EOS)."""
    lm_weight: float = field(default=0.0, metadata={"help": "weight of the LM's log-probabilities (with --lm)"})
    length_bonus: float = field(
        default=0.0, metadata={"help": "added to the score of every character, against an LM's short bias"}
    )
    max_word_repeats: int = 0
    end_detect: bool = False
    end_window: int = 3
    end_margin: float = 10.0
    attention_window: int = field(
        default=0,
        metadata={"help": "listener frames the attention scores a step around its last peak, 0: all", "minimum": 0},
    )
    keep_attention: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.beam <= MAX_BEAM:
            raise ValueError(f"beam must be from 1 to {MAX_BEAM}, got {self.beam}")
        if not 0 <= self.min_chars_per_second <= self.max_chars_per_second < math.inf or self.max_chars_per_second <= 0:
            raise ValueError("need 0 <= min_chars_per_second <= max_chars_per_second, a finite number above 0")
        if not 0 <= self.min_length_ratio <= (self.max_length_ratio or math.inf) or self.max_length_ratio == 0:
            raise ValueError("need 0 <= min_length_ratio <= max_length_ratio and max_length_ratio > 0 (or null)")
        if not 0 <= self.max_ctc_length_ratio < math.inf or self.ctc_length_margin < 0:
            raise ValueError("need 0 <= max_ctc_length_ratio (finite; 0: no such bound) and ctc_length_margin >= 0")
        if not 0 <= self.ctc_weight <= 1 or self.lm_weight < 0 or self.eos_threshold < 1:
            raise ValueError("need 0 <= ctc_weight <= 1, lm_weight >= 0 and eos_threshold >= 1")
        if self.ctc_candidates < 1:
            raise ValueError(f"ctc_candidates must be at least 1, got {self.ctc_candidates}")
        if self.max_word_repeats < 0 or self.end_window < 1 or self.end_margin <= 0:
            raise ValueError("need max_word_repeats >= 0, end_window >= 1 and end_margin > 0")
        if self.attention_window < 0:
            raise ValueError(f"attention_window must be 0 (every frame) or positive, got {self.attention_window}")
        values = (self.length_normalization, self.coverage_penalty, self.lm_weight, self.length_bonus)
        if not all(math.isfinite(value) for value in values):
            raise ValueError("length_normalization, coverage_penalty, lm_weight and length_bonus must be finite")


@dataclass(frozen=True)
class Hypothesis:
    """A decoded utterance: its text, token ids (no sos/eos), the search's ranking score
    (log-probability after length normalisation and penalties), attention weights
    (len(tokens) + 1, T') over the listener frames, the last row for <eos> (None unless the
    search was asked to keep them: `SearchConfig.keep_attention`), the log-probability itself
    summed over the tokens and <eos> (joint with CTC and the LM where they were used, length
    bonus included), and the listener frame each step attended to most (len(tokens) + 1,),
    which word timings need (taken from the weights when only they are given)."""

    text: str
    tokens: tuple[int, ...]
    score: float
    attention: torch.Tensor | None = None
    log_prob: float = -math.inf
    peaks: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.peaks is None and self.attention is not None:
            object.__setattr__(self, "peaks", self.attention.argmax(-1))

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
