"""An external character language model for shallow fusion in the search.

The files follow the pipeline: `corpus` (sentence files in, batches out; LM text from the
synthetic recipe's sources), `model` (the LSTM LM and the search's `LanguageModel`
protocol), `checkpoint` (the LM directory, no pickle), `evaluation` (bits per character,
perplexity), `training` (the loop, resumable). `asr lm train|evaluate|text` drive them.
"""

from asr.lm.checkpoint import LMDirectoryError, export_lm_dir, load_lm
from asr.lm.corpus import (
    LMText,
    LMTextError,
    TextBatch,
    TextCorpus,
    TextReport,
    lm_text,
    read_text,
    transcripts,
    write_lm_text,
)
from asr.lm.evaluation import LMScore, evaluate_lm
from asr.lm.model import CharLM, LMConfig, LMState

__all__ = [
    "CharLM",
    "LMConfig",
    "LMDirectoryError",
    "LMScore",
    "LMState",
    "LMText",
    "LMTextError",
    "TextBatch",
    "TextCorpus",
    "TextReport",
    "evaluate_lm",
    "export_lm_dir",
    "lm_text",
    "load_lm",
    "read_text",
    "transcripts",
    "write_lm_text",
]
