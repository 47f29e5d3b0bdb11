"""A tiny untrained model directory for the server's tests (its transcripts are gibberish, but the
same gibberish for the same audio), a client for the app it makes, and `asr serve` as a process."""

from __future__ import annotations

import io
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
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

ROOT = Path(__file__).resolve().parents[2]


def nan_wav() -> bytes:
    """A float WAV of one second with NaN samples in its middle."""
    samples = np.zeros(16000, dtype=np.float32)
    samples[8000:8100] = np.nan
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16000, subtype="FLOAT", format="WAV")
    return buffer.getvalue()


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


@dataclass(frozen=True)
class Server:
    """A running `asr serve`: its base URL (http://127.0.0.1:PORT), the file its standard error
    goes to, and its process."""

    base: str
    log: Path
    process: subprocess.Popen


def first_line(stream, timeout: float) -> str:
    """The first line `stream` gives within `timeout` seconds ("" if none)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def wait_for_health(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, "the server never answered /health"
        time.sleep(0.1)


@contextmanager
def served(model_dir: Path, folder: Path, *options: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`asr serve --model model_dir --port 0 --device cpu *options` as a process on a free loopback
    port, its temporary files and log in `folder`, until the block ends (then stopped, and checked
    to have stopped cleanly)."""
    command = [sys.executable, "-m", "asr", "serve", "--model", str(model_dir), "--port", "0", "--device", "cpu"]
    log = folder / "server.log"
    environment = {**os.environ, "TMPDIR": str(folder), **(env or {})}
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*command, *options], cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            line = first_line(process.stdout, timeout=60)
            found = re.search(r"OpenAI API base URL: (http://127\.0\.0\.1:\d+)/v1\)", line)
            assert found, f"no address in {line!r}; log: {log.read_text()}"
            wait_for_health(found.group(1))
            yield Server(found.group(1), log, process)
        finally:
            process.terminate()
            process.wait(30)
    assert process.returncode in (0, -15), log.read_text()
