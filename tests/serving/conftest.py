"""A tiny untrained model directory for the server's tests (its transcripts are gibberish, but the
same gibberish for the same audio), and a client for the app it makes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

import asr
from asr.checkpoint import export_model_dir
from asr.config import to_dict
from asr.decoding.config import SearchConfig
from asr.frontend.normalization import NormStats
from asr.model import LAS, AttentionConfig, LASConfig, ListenerConfig, SpellerConfig
from asr.serving.app import ServeConfig, create_app
from asr.text import Vocabulary
from tests.conftest import LIBRISPEECH

FILES = sorted(LIBRISPEECH.glob("*/*/*/*.flac"))
"""Six real recordings of 1-3 s."""


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory named "tiny": a seeded untrained LAS that spells 2 to 8 characters a second."""
    torch.manual_seed(0)
    vocab = Vocabulary.default()
    config = LASConfig(
        listener=ListenerConfig(layers=1, units=16, reduce=(0,)),
        attention=AttentionConfig(dim=16),
        speller=SpellerConfig(embedding_dim=8, units=16),
        vocab_size=len(vocab),
        ctc_weight=0.0,
    )
    record = {
        "model": to_dict(config),
        "decoding": to_dict(SearchConfig(beam=1, max_chars_per_second=8.0, min_chars_per_second=2.0)),
        "training": {"longest_utterance_seconds": 20.0},
    }
    stats = NormStats(mean=(0.0,) * 80, std=(1.0,) * 80, frames=1)
    directory = tmp_path_factory.mktemp("serving") / "tiny"
    export_model_dir(directory, record, LAS(config).state_dict(), vocab, stats)
    return directory


@pytest.fixture(scope="session")
def model(model_dir: Path) -> asr.Recognizer:
    return asr.load_model(model_dir, device="cpu")


@pytest.fixture()
def serve(model: asr.Recognizer, model_dir: Path) -> Callable[..., Iterator[TestClient]]:
    """`with serve(batch_size=..., ...) as client:` a client of the app with those `ServeConfig`
    settings, its queue's worker running."""

    @contextmanager
    def client(**settings: object) -> Iterator[TestClient]:
        app = create_app(model, model_dir, model.config(word_timestamps=True), ServeConfig(**settings))
        with TestClient(app) as test_client:
            yield test_client

    return client
