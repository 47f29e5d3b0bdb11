"""`asr serve` end to end: a server process on a free loopback port, called by the official openai
client in every response format, then stopped; and the command's one-line errors."""

from __future__ import annotations

import socket

import openai
import pytest
from openai import OpenAI

from asr.cli import main
from tests.serving.conftest import FILES, served


def test_asr_serve_answers_the_openai_client_in_every_format_and_stops_clean(model, model_dir, tmp_path) -> None:
    expected = model.transcribe(FILES[0], word_timestamps=True)
    with served(model_dir, tmp_path, env={"ASR_API_KEY": "secret"}) as server:
        client = OpenAI(base_url=f"{server.base}/v1", api_key="secret", max_retries=0, timeout=60)

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
            OpenAI(base_url=f"{server.base}/v1", api_key="guess", max_retries=0).models.list()
        with pytest.raises(openai.BadRequestError, match="notes.txt: not a readable audio file"):
            client.audio.transcriptions.create(model="tiny", file=("notes.txt", b"words\n" * 50))
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
