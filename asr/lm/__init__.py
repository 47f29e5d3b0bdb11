"""An external character language model for shallow fusion in the search: what the search
and `asr.load_model(..., lm=...)` need, and no more.

`model` (the LSTM LM and the search's `LanguageModel` protocol) and `checkpoint` (the LM
directory, no pickle). Making an LM is the training side's job, beside `asr.training`:
`asr.lm_corpus` (sentence files in, batches out; LM text from the synthetic recipe's
sources), `asr.lm_evaluation` (bits per character, perplexity) and `asr.lm_training` (the
loop, resumable). `asr lm train|evaluate|text` drive them.
"""

from asr.lm.checkpoint import LMDirectoryError, export_lm_dir, load_lm
from asr.lm.model import CharLM, LMConfig, LMState

__all__ = ["CharLM", "LMConfig", "LMDirectoryError", "LMState", "export_lm_dir", "load_lm"]
