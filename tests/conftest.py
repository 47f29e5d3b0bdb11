"""Shared test data: the committed LibriSpeech-layout fixture and the shared FSDD recordings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from asr.frontend.audio import load_audio

FIXTURES = Path(__file__).parent / "fixtures"
LIBRISPEECH = FIXTURES / "LibriSpeech"
FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"


@pytest.fixture(scope="session")
def speech() -> torch.Tensor:
    """About 1.8 s of speech (N,) at 16 kHz from the fixture."""
    waveform, _ = load_audio(LIBRISPEECH / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac")
    return waveform


@pytest.fixture(scope="session")
def fsdd() -> Path:
    """The Free Spoken Digit Dataset folder (real recordings), or skip."""
    if not (FSDD / "transcripts.tsv").is_file():
        pytest.skip(f"the shared FSDD recordings are not at {FSDD}")
    return FSDD


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """A writable copy of the fixture: tmp/LibriSpeech/<subset>/..."""
    shutil.copytree(LIBRISPEECH, tmp_path / "LibriSpeech")
    return tmp_path
