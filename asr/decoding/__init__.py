"""Searches over a LAS model, assembled from small parts as in Whisper's decoding.py.

`config` (what a search is told and returns), `scorers` (attention joined with CTC prefix
scores and an external LM), `rules` (forbidden tokens, length limits, the end rule, the
repetition guard), `ranking` (length normalisation, coverage, end detection), `search` (the
set-up and each step's scores, the same for both searches), and the two searches built from
them, `greedy` and `beam`, which share one signature:
`search(model, features, lengths, vocab, config, lm=None, frame_seconds=0.01) -> list[Hypothesis]`.
Every rule sees the scores the ranking uses.
"""

from asr.decoding.beam import beam_search
from asr.decoding.config import DecodingError, Hypothesis, LanguageModel, SearchConfig
from asr.decoding.greedy import greedy_search
from asr.decoding.scorers import CTCPrefixScorer, JointScorer

__all__ = [
    "CTCPrefixScorer",
    "DecodingError",
    "Hypothesis",
    "JointScorer",
    "LanguageModel",
    "SearchConfig",
    "beam_search",
    "greedy_search",
]
