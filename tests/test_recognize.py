"""Search settings from a model directory, and front end then search."""

from pathlib import Path

import pytest
import torch

from asr.checkpoint import export_model_dir, load_model_dir
from asr.config import to_dict
from asr.decoding.beam import beam_search
from asr.decoding.config import DecodingError, SearchConfig
from asr.frontend.features import FeatureConfig
from asr.frontend.normalization import NormStats
from asr.frontend.pipeline import Frontend
from asr.model import LAS, AttentionConfig, LASConfig, ListenerConfig, SpellerConfig
from asr.recognize import quantized, recognize, search_settings
from asr.text import Vocabulary


def test_decoding_overrides_are_checked_against_the_model(tmp_path: Path) -> None:
    vocab = Vocabulary.default()
    config = LASConfig(
        listener=ListenerConfig(layers=1, units=8, reduce=()),
        attention=AttentionConfig(dim=8),
        speller=SpellerConfig(embedding_dim=4, units=8),
        vocab_size=len(vocab),
        ctc_weight=0.0,
    )
    record = {"model": to_dict(config), "decoding": {"beam": 3, "ctc_weight": 0.0}}
    stats = NormStats(mean=(0.0,) * 80, std=(1.0,) * 80, frames=1)
    export_model_dir(tmp_path / "model", record, LAS(config).state_dict(), vocab, stats)
    loaded = load_model_dir(tmp_path / "model")
    assert search_settings(loaded.decoding, loaded.model) == SearchConfig(beam=3, ctc_weight=0.0)
    assert search_settings(loaded.decoding, loaded.model, None, beam=5, ctc_weight=None).beam == 5
    with pytest.raises(DecodingError, match="this model has no CTC head"):
        search_settings(loaded.decoding, loaded.model, None, ctc_weight=0.3)
    with pytest.raises(DecodingError, match="max_ctc_length_ratio is 1.3, but this model has no CTC head"):
        search_settings(loaded.decoding, loaded.model, None, max_ctc_length_ratio=1.3)
    with pytest.raises(DecodingError, match="beam must be from 1 to 1000"):
        search_settings(loaded.decoding, loaded.model, None, beam=0)
    with pytest.raises(DecodingError, match="lm_weight is 0.5, but no language model was given"):
        search_settings(loaded.decoding, loaded.model, None, lm_weight=0.5)


def test_recognize_is_the_front_end_then_the_search(speech) -> None:
    torch.manual_seed(0)
    vocab = Vocabulary.default()
    config = LASConfig(listener=ListenerConfig(layers=1, units=8, reduce=(0,)), vocab_size=len(vocab))
    model = LAS(config).eval()
    frontend = Frontend(FeatureConfig(), NormStats((0.0,) * 80, (1.0,) * 80, 1)).eval()
    search = SearchConfig(beam=2, max_chars_per_second=5.0)
    waveforms, lengths = speech[None], torch.tensor([speech.shape[0]])
    features, frames, (hypothesis,) = recognize(model, frontend, waveforms, lengths, vocab, search)
    (expected,) = beam_search(model, *frontend(waveforms, lengths), vocab, search)
    assert hypothesis.tokens == expected.tokens and frames.tolist() == [features.shape[1]]
    assert len(hypothesis.tokens) <= int(frames[0] * frontend.hop_seconds * 5.0)


def test_a_lean_model_loads_from_its_directory_and_runs_in_int8(tmp_path: Path) -> None:
    """A listener projection and a speller without input feeding survive the model directory;
    int8 quantizes that speller's LSTM, whose step then stays close to the float one."""
    torch.manual_seed(0)
    vocab = Vocabulary.default()
    config = LASConfig(
        listener=ListenerConfig(layers=2, units=16, reduce=(1,), projection=12),
        attention=AttentionConfig(dim=16),
        speller=SpellerConfig(embedding_dim=8, units=16, input_feeding=False),
        vocab_size=len(vocab),
        ctc_weight=0.0,
    )
    stats = NormStats(mean=(0.0,) * 80, std=(1.0,) * 80, frames=1)
    export_model_dir(tmp_path / "model", {"model": to_dict(config)}, LAS(config).state_dict(), vocab, stats)
    model = load_model_dir(tmp_path / "model").model.eval()
    assert model.config == config
    int8 = quantized(model)
    assert type(int8.speller.lstm).__module__.startswith("torch.ao.nn.quantized")
    assert all(type(layer.lstm).__module__.startswith("torch.ao.nn.quantized") for layer in int8.listener.lstms)
    features, lengths = torch.randn(2, 40, 80), torch.tensor([40, 27])
    with torch.no_grad():  # both directions of each listener layer run on their int8 weights
        encoded = int8.encode(features, lengths)[0], model.encode(features, lengths)[0]
    torch.testing.assert_close(*encoded, atol=0.05, rtol=0.05)

    @torch.no_grad()
    def first_step(las: LAS) -> torch.Tensor:
        memory = las.speller.memory(*las.encode(features, lengths))
        return las.speller.step(las.speller.initial_state(memory), torch.full((2,), vocab.sos_id), memory)[0]

    torch.testing.assert_close(first_step(int8), first_step(model), atol=0.05, rtol=0.05)
