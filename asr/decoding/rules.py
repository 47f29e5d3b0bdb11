"""The rules every search applies to the scores it ranks by (Whisper's "logit filters"):
tokens that are never produced, how long a hypothesis may be, when it may end, and a guard
against a word said over and over.

Each rule takes and returns (N, V) scores: the joint attention + CTC + LM log-probabilities
of extending each of N hypotheses by each of V tokens, -inf where not allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asr.decoding.config import SearchConfig
from asr.model import LAS
from asr.text import Vocabulary


def forbidden_tokens(vocab: Vocabulary, size: int, device: torch.device) -> torch.Tensor:
    """(V,) bool: tokens a hypothesis may never produce (blank, pad, sos)."""
    forbidden = torch.zeros(size, dtype=torch.bool, device=device)
    forbidden[[vocab.blank_id, vocab.pad_id, vocab.sos_id]] = True
    return forbidden


def ctc_greedy_lengths(log_probs: torch.Tensor, encoded_lengths: torch.Tensor, blank: int) -> torch.Tensor:
    """(B, T', V) CTC log-probabilities, (B,) listener frames -> (B,) characters on each utterance's
    greedy CTC path (the best token of each frame, repeats merged, blanks dropped)."""
    best = log_probs.argmax(-1)  # (B, T')
    previous = torch.nn.functional.pad(best, (1, 0), value=blank)[:, :-1]  # each frame's predecessor
    frames = torch.arange(best.shape[1], device=best.device) < encoded_lengths[:, None]
    return ((best != blank) & (best != previous) & frames).sum(-1)


def ctc_for_search(
    model: LAS, encoded: torch.Tensor, encoded_lengths: torch.Tensor, config: SearchConfig, blank: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The CTC branch's part in a search over listener output (B, T', D), (B,): its log-probabilities
    (B, T', V) where the search scores with CTC, and its greedy path's characters (B,) where the
    search bounds lengths with them; None for a part the config does not use."""
    if config.ctc_weight == 0 and config.max_ctc_length_ratio == 0:
        return None, None
    log_probs = model.ctc_log_probs(encoded)
    characters = ctc_greedy_lengths(log_probs, encoded_lengths, blank) if config.max_ctc_length_ratio > 0 else None
    return (log_probs if config.ctc_weight > 0 else None), characters


def length_limits(
    lengths: torch.Tensor,
    encoded_lengths: torch.Tensor,
    frame_seconds: float,
    config: SearchConfig,
    ctc_characters: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) feature frames of `frame_seconds` each, (B,) listener frames -> the fewest and most
    characters (EOS not counted) of each utterance's hypotheses, from its duration in seconds
    (and its listener frames, where the config bounds characters per frame too, and the
    characters (B,) of its greedy CTC path, where the config bounds lengths by those).

    An utterance without any listener frame (too short for one) may only end at once."""
    seconds = lengths.to(encoded_lengths.device).float() * frame_seconds
    frames = encoded_lengths.float()
    longest = (seconds * config.max_chars_per_second).floor()
    if config.max_length_ratio is not None:
        longest = torch.minimum(longest, (frames * config.max_length_ratio).floor())
    if ctc_characters is not None:  # ctc_for_search counts them only where the config bounds by them
        bound = (ctc_characters.float() * config.max_ctc_length_ratio).ceil() + config.ctc_length_margin
        longest = torch.minimum(longest, bound)
    longest = longest.long().clamp(min=1).masked_fill(encoded_lengths == 0, 0)
    shortest = torch.maximum(seconds * config.min_chars_per_second, frames * config.min_length_ratio).floor().long()
    return torch.minimum(shortest, longest), longest


def end_rule(scores: torch.Tensor, step: int, shortest: torch.Tensor, config: SearchConfig, eos: int) -> torch.Tensor:
    """(N, V) scores -> the same with EOS at -inf where it may not end a hypothesis yet: before
    its shortest length, or when EOS scores below `eos_threshold` x the best other token.

    EOS is never blocked where it is the only extension with a finite score, so a hypothesis
    always has a way to end."""
    others = scores.clone()
    others[:, eos] = float("-inf")
    best_other = others.max(dim=-1).values
    blocked = (scores[:, eos] < config.eos_threshold * best_other) | (step < shortest)
    blocked &= torch.isfinite(best_other)
    scores[:, eos] = scores[:, eos].masked_fill(blocked, float("-inf"))
    return scores


_HASH_BASE, _HASH_MODULUS = 1_000_003, 2**61 - 1


@dataclass(frozen=True)
class RepetitionGuard:
    """Per hypothesis (N,): a hash of the word being spelt, the hash of the last complete word
    and how many times in a row that word was said. A space or EOS that would complete the
    (`limit` + 1)-th saying of a word in a row is not allowed, so a search cannot loop on
    "FOR FOR FOR ..."; the word can still go on ("FORTH")."""

    word: torch.Tensor
    previous: torch.Tensor
    count: torch.Tensor

    @classmethod
    def start(cls, n: int, device: torch.device) -> RepetitionGuard:
        zeros = torch.zeros(n, dtype=torch.long, device=device)
        return cls(zeros, zeros - 1, zeros)

    @classmethod
    def for_search(
        cls, n: int, device: torch.device, config: SearchConfig, vocab: Vocabulary
    ) -> RepetitionGuard | None:
        """A guard for `n` hypotheses if the config limits repeats and the vocabulary has words, else None."""
        return cls.start(n, device) if config.max_word_repeats > 0 and vocab.space_id is not None else None

    def apply(self, scores: torch.Tensor, limit: int, space: int, eos: int) -> torch.Tensor:
        """(N, V) scores with the space and EOS ruled out where they would repeat a word too often."""
        repeating = (self.word == self.previous) & (self.count >= limit) & (self.word != 0)
        scores[:, space] = scores[:, space].masked_fill(repeating, float("-inf"))
        scores[:, eos] = scores[:, eos].masked_fill(repeating, float("-inf"))
        return scores

    def advance(self, parents: torch.Tensor, tokens: torch.Tensor, space: int) -> RepetitionGuard:
        """The guard of hypotheses `parents` (N',) extended by `tokens` (N',)."""
        word, previous, count = (t.index_select(0, parents) for t in (self.word, self.previous, self.count))
        ends = tokens == space
        same = ends & (word == previous) & (word != 0)
        count = torch.where(ends, torch.where(same, count + 1, torch.ones_like(count)), count)
        previous = torch.where(ends, word, previous)
        word = torch.where(ends, torch.zeros_like(word), (word * _HASH_BASE + tokens + 1) % _HASH_MODULUS)
        return RepetitionGuard(word, previous, count)


def apply_rules(
    scores: torch.Tensor,
    step: int,
    shortest: torch.Tensor,
    guard: RepetitionGuard | None,
    config: SearchConfig,
    vocab: Vocabulary,
) -> torch.Tensor:
    """Every rule, in order, on (N, V) `scores` of hypotheses with `step` characters whose utterances
    allow at least `shortest` (N,) characters: the repetition guard (when there is one), then the
    end rule."""
    if guard is not None and vocab.space_id is not None:
        scores = guard.apply(scores, config.max_word_repeats, vocab.space_id, vocab.eos_id)
    return end_rule(scores, step, shortest, config, vocab.eos_id)
