"""Data preparation: JSONL manifests from a LibriSpeech-layout tree, a TSV table, a Kaldi data
directory, a Common Voice language folder or AISHELL-1.

Durations come from the audio headers, read in parallel; `PrepareConfig.verify`
also decodes every file once. Items that cannot be used (missing or unreadable
audio, malformed lines, audio without transcript, transcripts without audio,
transcripts that normalise to nothing) are counted by reason, logged and skipped:
never silently dropped. Transcripts that `normalize()` would change for the worse
(digits, symbols, letters the normaliser cannot spell) are counted in the report's notes.
"""

from asr.data.prepare.aishell import prepare_aishell
from asr.data.prepare.common import PrepareConfig, PrepareReport
from asr.data.prepare.commonvoice import prepare_commonvoice
from asr.data.prepare.kaldi import prepare_kaldi
from asr.data.prepare.librispeech import prepare_librispeech
from asr.data.prepare.tsv import AUDIO_COLUMNS, prepare_tsv

__all__ = [
    "AUDIO_COLUMNS",
    "PrepareConfig",
    "PrepareReport",
    "prepare_aishell",
    "prepare_commonvoice",
    "prepare_kaldi",
    "prepare_librispeech",
    "prepare_tsv",
]
