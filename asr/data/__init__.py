"""Data: manifests and what training and evaluation read from them.

`manifest` (utterance records, JSONL reading and writing, speaker splits, length filters, the
header check), `dataset` (audio decoded and transcripts encoded, collation into padded
batches, normalisation statistics of a manifest), `sampler` (length-bucketed batches within a
frame budget), `prepare/` (manifests from LibriSpeech, a TSV table or a Kaldi directory).

May import: `asr.frontend`, `asr.text` and the foundations (`errors`, `atomic`, `config`,
`progress`). This file imports nothing, so that `import asr.data.manifest` stays light.
"""
