"""`asr serve` end to end: a server process on a free loopback port, called by the official openai
client in every response format, then stopped; and the command's one-line errors."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from asr.cli import main
from tests.serving.conftest import FILES

ROOT = Path(__file__).resolve().parents[2]


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


def test_asr_serve_answers_the_openai_client_in_every_format_and_stops_clean(model, model_dir, tmp_path) -> None:
    expected = model.transcribe(FILES[0], word_timestamps=True)
    env = {**os.environ, "TMPDIR": str(tmp_path), "ASR_API_KEY": "secret"}
    command = [sys.executable, "-m", "asr", "serve", "--model", str(model_dir), "--port", "0", "--device", "cpu"]
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            line = first_line(server.stdout, timeout=60)
            found = re.search(r"OpenAI API base URL: (http://127\.0\.0\.1:\d+)/v1\)", line)
            assert found, f"no address in {line!r}; log: {(tmp_path / 'server.log').read_text()}"
            base = found.group(1)
            wait_for_health(base)
            client = OpenAI(base_url=f"{base}/v1", api_key="secret", max_retries=0, timeout=60)

            def create(**options):
                with FILES[0].open("rb") as handle:
                    return client.audio.transcriptions.create(model="tiny", file=handle, **options)

            assert create().text == expected.text
            assert create(response_format="text").strip() == expected.text
            assert create(response_format="srt").count(" --> ") == len(expected.segments)
            assert create(response_format="vtt").startswith("WEBVTT")
            verbose = create(response_format="verbose_json", timestamp_granularities=["word", "segment"])
            assert verbose.text == expected.text and verbose.language == "english"
            assert verbose.duration == pytest.approx(expected.duration, abs=1e-3)
            assert [segment.text for segment in verbose.segments] == [s.text for s in expected.segments]
            assert [word.word for word in verbose.words] == [w.text for s in expected.segments for w in s.words]
            assert [m.id for m in client.models.list()] == ["tiny"]
            with pytest.raises(openai.AuthenticationError):
                OpenAI(base_url=f"{base}/v1", api_key="guess", max_retries=0).models.list()
            with pytest.raises(openai.BadRequestError, match="notes.txt: not a readable audio file"):
                client.audio.transcriptions.create(model="tiny", file=("notes.txt", b"words\n" * 50))
        finally:
            server.terminate()
            server.wait(30)
    assert server.returncode in (0, -15)
    assert list(tmp_path.glob("asr-serve-*")) == []  # the uploads' private folder went with the server


def test_a_port_in_use_is_one_line_naming_it(model_dir, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(model_dir), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    where = f"--host 127.0.0.1 --port {port}"
    assert err == f"asr: error: {where}: address already in use; choose another port (0: any free one)\n"


def test_a_port_out_of_range_is_a_usage_error(model_dir, capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["serve", "--model", str(model_dir), "--port", "70000"])
    assert exit.value.code == 2 and "must be from 0 to 65535" in capsys.readouterr().err
