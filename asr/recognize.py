"""Recognising audio with a model: its search settings with a caller's overrides, and "front end,
then greedy or beam search", written once for evaluation, transcription and validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from asr.checkpoint import LoadedModel
from asr.config import ConfigError, from_dict
from asr.decoding.beam import beam_search
from asr.decoding.config import DecodingError, Hypothesis, LanguageModel, SearchConfig
from asr.decoding.greedy import greedy_search
from asr.frontend.pipeline import Frontend
from asr.model import LAS
from asr.text import Vocabulary


def decoding_section(decoding: Mapping[str, Any]) -> SearchConfig:
    """A model's `decoding` section (plain values, as its config.yaml holds it) as a `SearchConfig`;
    `DecodingError` naming the setting that is wrong."""
    try:
        return from_dict(SearchConfig, decoding, "decoding")
    except (ValueError, ConfigError) as error:
        raise DecodingError(f"decoding: {error}") from None


def search_settings(
    defaults: SearchConfig | Mapping[str, Any], model: LAS, lm: LanguageModel | None = None, **overrides: Any
) -> SearchConfig:
    """`defaults` (a model's decoding section, read once with `decoding_section`, or its plain
    values) with the non-None `overrides` (beam=..., ctc_weight=..., lm_weight=...).

    Raises `DecodingError` naming a setting that cannot be used with this model (CTC weights or
    lengths without a CTC head, an attention window without additive or location attention) or without an LM
    (an LM weight).
    """
    config = defaults if isinstance(defaults, SearchConfig) else decoding_section(defaults)
    try:
        config = dataclasses.replace(config, **{key: value for key, value in overrides.items() if value is not None})
    except ValueError as error:
        raise DecodingError(f"decoding: {error}") from None
    if config.ctc_weight > 0 and model.ctc_head is None:
        raise DecodingError(f"decoding: ctc_weight is {config.ctc_weight}, but this model has no CTC head; use 0")
    if config.max_ctc_length_ratio > 0 and model.ctc_head is None:
        raise DecodingError(
            f"decoding: max_ctc_length_ratio is {config.max_ctc_length_ratio}, but this model has no CTC head; use 0"
        )
    if config.attention_window and not model.speller.attention.windowed:
        kind = type(model.speller.attention).__name__
        raise DecodingError(f"decoding: attention_window needs additive or location attention, not {kind}; use 0")
    if config.lm_weight > 0 and lm is None:
        raise DecodingError(f"decoding: lm_weight is {config.lm_weight}, but no language model was given (--lm DIR)")
    return config


@torch.no_grad()
def recognize(
    model: LAS,
    frontend: Frontend,
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    vocab: Vocabulary,
    config: SearchConfig,
    lm: LanguageModel | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[Hypothesis]]:
    """Padded waveforms (B, N) at 16 kHz, (B,) samples -> features (B, T, D), (B,) frames, and the
    best hypothesis of each (greedy search for beam 1, beam search otherwise)."""
    features, feature_lengths = frontend(waveforms, lengths)
    search = greedy_search if config.beam == 1 else beam_search
    hypotheses = search(model, features, feature_lengths, vocab, config, lm, frame_seconds=frontend.hop_seconds)
    return features, feature_lengths, hypotheses


INT8_MODULES = (torch.nn.LSTM, torch.nn.LSTMCell)
"""Module types that int8 inference quantizes, with the speller's output layers and the CTC head."""


def quantized(model: LAS) -> LAS:
    """A copy of `model` for CPU inference with int8 weights (dynamic quantization: activations stay
    float): every LSTM of the listener and the speller, the speller's output layers and the CTC
    head. The attention keeps float weights (it reads them directly)."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    names = {"speller.hidden_output", "speller.output", "ctc_head"}
    spec = {
        name: default_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, INT8_MODULES) or name in names
    }
    return quantize_dynamic(model, qconfig_spec=spec, inplace=False)


def int8_model(loaded: LoadedModel) -> LoadedModel:
    """`loaded` with int8 weights (`quantized`); a CPU only (DecodingError otherwise)."""
    if loaded.device.type != "cpu":
        raise DecodingError(f"int8 weights run on a CPU only; this model is on {loaded.device} (use --device cpu)")
    return dataclasses.replace(loaded, model=quantized(loaded.model))
