"""The fault list of `asr serve`, sent to a server process over loopback as clients would send it:
an empty body, a wrong field name, a 0-byte file, a text file, 2-hour recordings beyond the limits,
NaN audio, a wrong key, and 1,000 requests at once. Each gets a 4xx (or a 503 when the queue is
full) in OpenAI's error shape with a message that names what was wrong; never a 500, never a
traceback in the server's log; the server answers as before afterwards and keeps no upload."""

from __future__ import annotations

import asyncio
import io
import resource
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from tests.serving.conftest import FILES, Server, nan_wav, served

KEY = "secret"
AUTHORIZED = {"Authorization": f"Bearer {KEY}"}
TWO_HOURS = 2 * 3600
CONCURRENT = 1000


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default limits (100 MB an upload, 3,600 s of audio a request, 64 waiting)
    and an API key. Its process and this one may each hold 1,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONCURRENT + 500
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"1,000 connections need {wanted} open files; this machine allows {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        with served(model_dir, tmp_path_factory.mktemp("faults"), env={"ASR_API_KEY": KEY}) as running:
            yield running
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def silent_flac(seconds: int, rate: int = 8000) -> bytes:
    """A FLAC of `seconds` of silence (a few hundred KB for two hours), written block by block."""
    buffer = io.BytesIO()
    block = np.zeros(rate * 60, dtype=np.int16)
    with soundfile.SoundFile(buffer, "w", rate, 1, "PCM_16", format="FLAC") as flac:
        for _ in range(seconds // 60):
            flac.write(block)
    return buffer.getvalue()


def wav_header(seconds: int, rate: int = 16000) -> bytes:
    """The 44-byte header of a 16-bit mono PCM WAV holding `seconds` of audio."""
    data = seconds * rate * 2
    return b"".join(
        [
            b"RIFF", (36 + data).to_bytes(4, "little"), b"WAVEfmt ", (16).to_bytes(4, "little"),
            (1).to_bytes(2, "little"), (1).to_bytes(2, "little"), rate.to_bytes(4, "little"),
            (rate * 2).to_bytes(4, "little"), (2).to_bytes(2, "little"), (16).to_bytes(2, "little"),
            b"data", data.to_bytes(4, "little"),
        ]
    )  # fmt: skip


def two_hour_wav_form() -> Iterator[bytes]:
    """A multipart body holding a 2-hour WAV (230 MB), made as it is sent, never held whole."""
    yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="lecture.wav"\r\n\r\n'
    yield wav_header(TWO_HOURS)
    silence = bytes(1 << 20)
    for _ in range(TWO_HOURS * 16000 * 2 >> 20):
        yield silence
    yield b"\r\n--b--\r\n"


FAULTS = {
    "an empty body": ({"content": b""}, 400, "no file: send multipart/form-data"),
    "a wrong field name": ({"files": {"audio": ("a.flac", FILES[0].read_bytes())}}, 400, "(got fields: audio)"),
    "a 0-byte file": ({"files": {"file": ("empty.wav", b"")}}, 400, "empty.wav: empty file (0 bytes)"),
    "a text file": ({"files": {"file": ("notes.txt", b"words\n" * 50)}}, 400, "notes.txt: not a readable audio"),
    "a 2-hour FLAC, beyond the audio limit": (
        {"files": {"file": ("lecture.flac", silent_flac(TWO_HOURS))}},
        413,
        "lecture.flac: 7200.0 s of audio; this server transcribes at most 3600 s a request",
    ),
    "a 2-hour WAV, beyond the upload limit": (
        {"content": two_hour_wav_form(), "headers": {"Content-Type": "multipart/form-data; boundary=b"}},
        413,
        "the upload is larger than this server takes (100 MB)",
    ),
    "NaN audio": ({"files": {"file": ("nan.wav", nan_wav())}}, 400, "nan.wav: contains NaN samples"),
    "a wrong key": ({"files": {"file": ("a.flac", b"")}, "headers": {"Authorization": "Bearer guess"}}, 401, "wrong"),
}


def assert_error(response: httpx.Response, status: int, phrase: str) -> None:
    """`response` is OpenAI's error shape with `status` and a message holding `phrase`."""
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert phrase in error["message"] and error["type"] in ("invalid_request_error", "server_error"), error


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_a_4xx_naming_what_is_wrong(server, fault) -> None:
    request, status, phrase = FAULTS[fault]
    headers = {**AUTHORIZED, **request.get("headers", {})}
    with httpx.Client(base_url=server.base, timeout=120) as client:
        response = client.post("/v1/audio/transcriptions", **{**request, "headers": headers})
        assert_error(response, status, phrase)
        assert client.get("/health").json()["status"] == "ok"
    assert "Traceback" not in server.log.read_text()


async def many_at_once(base: str, count: int) -> list[httpx.Response]:
    """`count` transcription requests sent at once, each on its own connection."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    data = FILES[0].read_bytes()
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits, headers=AUTHORIZED) as client:
        requests = [client.post("/v1/audio/transcriptions", files={"file": ("a.flac", data)}) for _ in range(count)]
        return await asyncio.gather(*requests)


def test_a_thousand_requests_at_once_are_served_or_told_to_retry(server) -> None:
    responses = asyncio.run(many_at_once(server.base, CONCURRENT))
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {200, 503} and statuses[200] >= 64, statuses  # at least a queue's worth served
    texts = {response.json()["text"] for response in responses if response.status_code == 200}
    assert len(texts) == 1  # the same recording, the same transcript, whichever batch it was in
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert_error(response, 503, "the server is busy")
    with httpx.Client(base_url=server.base, headers=AUTHORIZED) as client:
        assert client.get("/health").json() == {"status": "ok", "model": "tiny", "queued": 0, "decoding": 0}
        with FILES[0].open("rb") as handle:
            assert client.post("/v1/audio/transcriptions", files={"file": handle}).json()["text"] in texts
    assert "Traceback" not in server.log.read_text()
    assert list(Path(server.log.parent).glob("asr-serve-*/*")) == []  # no upload left behind
