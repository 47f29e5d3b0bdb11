"""Decoding: searches over a LAS model, assembled from small parts as in Whisper's decoding.py.

`config` (what a search is told and returns), `scorers` (attention joined with CTC prefix
scores and an external LM), `rules` (forbidden tokens, length limits, the end rule, the
repetition guard), `ranking` (length normalisation, coverage, end detection), `search` (the
set-up and each step's scores, the same for both searches), and the two searches built from
them, `greedy` and `beam`, which share one signature:
`search(model, features, lengths, vocab, config, lm=None, frame_seconds=0.01) -> list[Hypothesis]`.
Every rule sees the scores the ranking uses.

May import: `asr.model`, `asr.text`, `asr.errors`. Import from the modules themselves
(`from asr.decoding.beam import beam_search`): this file imports nothing, so that the
command line reads `SearchConfig`'s flags without loading torch.
"""
