"""An external character language model for shallow fusion in the search.

For the search and `asr.load_model(..., lm=...)`: `model` (the LSTM LM and the search's
`LanguageModel` protocol) and `checkpoint` (the LM directory, no pickle), both exported here.

For making an LM (`asr lm train|evaluate|text`), beside them and imported only by those
commands, never by inference: `corpus` (sentence files in, batches out; LM text from the
synthetic recipe's sources), `evaluation` (bits per character, perplexity) and `training`
(the loop, resumable; it uses `asr.training`'s schedule and step bookkeeping).
"""

from asr.lm.checkpoint import LMDirectoryError, export_lm_dir, load_lm
from asr.lm.model import CharLM, LMConfig, LMState

__all__ = ["CharLM", "LMConfig", "LMDirectoryError", "LMState", "export_lm_dir", "load_lm"]
