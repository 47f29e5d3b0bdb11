"""Listen, Attend and Spell (Chan et al. 2016) with joint CTC (Kim et al. 2017).

The files follow the architecture: `listener` (front end and pyramidal BiLSTM),
`attention` (the five attention kinds), `speller` (the input-feeding decoder step),
`las` (the whole model and its losses). Model code only computes: no I/O, no device
choice. Everything public is importable from `asr.model`.

May import: torch only.
"""

from asr.model.attention import (
    ATTENTIONS,
    AdditiveAttention,
    Attention,
    AttentionConfig,
    DotAttention,
    GeneralAttention,
    LocationAttention,
    MultiHeadAttention,
    masked_softmax,
)
from asr.model.las import LAS, LASConfig, Losses
from asr.model.listener import BiLSTM, Conv2dSubsampling, Listener, ListenerConfig, lengths_to_mask, reverse_padded
from asr.model.speller import Memory, Speller, SpellerConfig, SpellerState

__all__ = [
    "ATTENTIONS",
    "LAS",
    "AdditiveAttention",
    "Attention",
    "AttentionConfig",
    "BiLSTM",
    "Conv2dSubsampling",
    "DotAttention",
    "GeneralAttention",
    "LASConfig",
    "Listener",
    "ListenerConfig",
    "LocationAttention",
    "Losses",
    "Memory",
    "MultiHeadAttention",
    "Speller",
    "SpellerConfig",
    "SpellerState",
    "lengths_to_mask",
    "masked_softmax",
    "reverse_padded",
]
