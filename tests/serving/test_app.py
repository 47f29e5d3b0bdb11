"""The HTTP app through FastAPI's TestClient: every response format, every bad request answered in
OpenAI's error shape with a 4xx, the limits, the key, and batching under concurrent requests; and
under uvicorn in a thread, a client that hangs up while its request waits."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from asr.serving.app import ServeConfig, create_app, decoding_thread, model_name
from asr.writers import to_srt, to_vtt
from tests.serving.conftest import FILES, nan_wav

URL = "/v1/audio/transcriptions"


def post(client, path: Path = FILES[0], headers: dict[str, str] | None = None, **fields) -> httpx.Response:
    """A transcription request for the recording at `path`, with form `fields`."""
    with path.open("rb") as handle:
        return client.post(URL, files={"file": (path.name, handle, "audio/flac")}, data=fields, headers=headers)


def test_json_and_text_hold_the_python_api_s_transcript(serve, model) -> None:
    expected = model.transcribe(FILES[0]).text
    assert expected  # the tiny model spells at least 2 characters a second
    with serve() as client:
        default, json = post(client), post(client, response_format="json", model="whisper-1", language="en")
        text = post(client, response_format="text")
    assert default.json() == json.json() == {"text": expected}
    assert text.text == expected + "\n" and text.headers["content-type"].startswith("text/plain")


def test_srt_and_vtt_are_what_asr_transcribe_writes(serve, model) -> None:
    transcript = model.transcribe(FILES[0])
    with serve() as client:
        srt, vtt = post(client, response_format="srt"), post(client, response_format="vtt")
    assert srt.text == to_srt(transcript) and srt.text.count(" --> ") == len(transcript.segments) >= 1
    assert vtt.text == to_vtt(transcript) and vtt.headers["content-type"].startswith("text/vtt")


def test_verbose_json_has_ordered_segments_and_words_inside_the_recording(serve, model) -> None:
    transcript = model.transcribe(FILES[0])
    with serve() as client:
        plain = post(client, response_format="verbose_json").json()
        both = post(client, response_format="verbose_json", **{"timestamp_granularities[]": ["segment", "word"]}).json()
    assert plain["task"] == "transcribe" and plain["language"] == "english" and "words" not in plain
    assert plain["duration"] == pytest.approx(transcript.duration, abs=1e-3)
    assert plain["text"] == transcript.text == " ".join(s["text"] for s in plain["segments"])
    assert [s["id"] for s in plain["segments"]] == list(range(len(transcript.segments)))
    assert all(0 <= s["start"] <= s["end"] <= plain["duration"] for s in plain["segments"])
    assert both["segments"] == plain["segments"] and both["words"]
    starts = [w["start"] for w in both["words"]]
    assert starts == sorted(starts) and all(0 <= w["start"] <= w["end"] <= plain["duration"] for w in both["words"])


BAD_REQUESTS = {
    "a form without a file": ({"data": {"model": "whisper-1"}}, "file", "no file: send multipart/form-data"),
    "a JSON body": ({"json": {"file": "speech.wav"}}, "file", "got Content-Type application/json"),
    "the file under another name": (
        {"files": {"audio": ("speech.flac", FILES[0].read_bytes())}},
        "file",
        "as the multipart field 'file' (got fields: audio)",
    ),
    "the file as a text field": (
        {"files": {"other": ("a.txt", b"x")}, "data": {"file": "speech.flac"}},
        "file",
        "file: a text field, not a file",
    ),
    "an empty file": ({"files": {"file": ("empty.wav", b"")}}, "file", "empty.wav: empty file (0 bytes)"),
    "a text file": ({"files": {"file": ("notes.txt", b"words\n" * 50)}}, "file", "notes.txt: not a readable audio"),
    "a client's path as the name": (
        {"files": {"file": ("../../etc/passwd", b"root:x:0:0\n" * 50)}},
        "file",
        "passwd: not a readable audio file",
    ),
    "NaN samples": ({"files": {"file": ("nan.wav", nan_wav())}}, "file", "nan.wav: contains NaN samples"),
    "an unknown response format": (
        {"files": {"file": ("s.flac", FILES[0].read_bytes())}, "data": {"response_format": "xml"}},
        "response_format",
        "response_format 'xml' is not one of json, text, srt, verbose_json, vtt",
    ),
    "an unknown granularity": (
        {"files": {"file": ("s.flac", FILES[0].read_bytes())}, "data": {"timestamp_granularities[]": "char"}},
        "timestamp_granularities[]",
        "timestamp_granularities[] 'char': choose from segment, word",
    ),
    "a stream request": (
        {"files": {"file": ("s.flac", FILES[0].read_bytes())}, "data": {"stream": "true"}},
        "stream",
        "does not stream",
    ),
}


def test_each_bad_request_is_a_400_in_openai_s_shape_naming_what_is_wrong(serve) -> None:
    with serve() as client:
        folder = client.app.state.folder
        answers = {case: client.post(URL, **request) for case, (request, _, _) in BAD_REQUESTS.items()}
        assert list(folder.iterdir()) == []  # no upload is left behind
    for case, (_, param, phrase) in BAD_REQUESTS.items():
        response = answers[case]
        assert response.status_code == 400, case
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param, case
        assert phrase in error["message"], (case, error["message"])
        assert str(folder) not in error["message"], case  # the server's own paths stay its own


def multipart(data: bytes) -> bytes:
    """A multipart body with `data` as its file, between boundaries "b"."""
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.flac"\r\nContent-Type: audio/flac\r\n\r\n'
    return head + data + b"\r\n--b--\r\n"


def test_an_upload_over_the_limit_is_a_413_however_it_is_sent(serve) -> None:
    data, big = FILES[0].read_bytes(), multipart(b"\0" * 1_200_000)
    form = {"content-type": "multipart/form-data; boundary=b"}
    with serve(max_upload_bytes=len(data) - 1) as client:
        declared = client.post(URL, content=big, headers=form)  # refused on its Content-Length
        counted = client.post(URL, content=(big[i : i + 65536] for i in range(0, len(big), 65536)), headers=form)
        just_over = client.post(URL, content=multipart(data), headers=form)
    with serve(max_upload_bytes=len(data)) as client:
        at_the_limit = client.post(URL, content=multipart(data), headers=form)
    for response in (declared, counted, just_over):
        assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    assert at_the_limit.status_code == 200


def test_a_recording_longer_than_the_limit_is_a_413_naming_its_length(serve) -> None:
    with serve(max_audio_seconds=1.0) as client:
        response = post(client)
    error = response.json()["error"]
    assert response.status_code == 413 and error["code"] == "audio_too_long"
    assert error["message"].startswith(f"{FILES[0].name}: ") and "at most 1 s" in error["message"]


def test_with_an_api_key_only_requests_that_carry_it_are_served(serve) -> None:
    with serve(api_key="secret") as client:
        missing, wrong = post(client), post(client, headers={"Authorization": "Bearer guess"})
        right = post(client, headers={"Authorization": "Bearer secret"})
        models = client.get("/v1/models"), client.get("/v1/models", headers={"Authorization": "Bearer secret"})
        health = client.get("/health")
    assert missing.status_code == wrong.status_code == models[0].status_code == 401
    assert missing.json()["error"]["code"] == wrong.json()["error"]["code"] == "invalid_api_key"
    assert "no API key" in missing.json()["error"]["message"] and "wrong API key" in wrong.json()["error"]["message"]
    assert right.status_code == models[1].status_code == health.status_code == 200


def test_health_models_and_the_page(serve) -> None:
    with serve() as client:
        health, models = client.get("/health").json(), client.get("/v1/models").json()
        one, other = client.get("/v1/models/tiny"), client.get("/v1/models/whisper-1")
        page, nowhere = client.get("/"), client.get("/v2/nothing")
    assert health == {"status": "ok", "model": "tiny", "queued": 0, "decoding": 0}
    assert models["object"] == "list" and [card["id"] for card in models["data"]] == ["tiny"]
    card = models["data"][0]
    assert card["object"] == "model" and card["language"] == "english" and card["search"]["beam"] == 1
    assert one.json() == card and other.status_code == 404 and other.json()["error"]["code"] == "model_not_found"
    assert page.headers["content-type"].startswith("text/html")
    assert "MediaRecorder" in page.text and "v1/audio/transcriptions" in page.text
    assert nowhere.status_code == 404 and "no such route" in nowhere.json()["error"]["message"]


def test_uploads_go_to_a_private_folder_that_is_removed_at_shutdown(serve) -> None:
    with serve() as client:
        folder = client.app.state.folder
        assert folder.stat().st_mode & 0o777 == 0o700
        assert post(client).status_code == 200
        assert list(folder.iterdir()) == []
    assert not folder.exists()


def test_concurrent_requests_are_decoded_in_fewer_batches_with_the_texts_of_one_by_one(
    serve, model, monkeypatch
) -> None:
    alone = [model.transcribe(path).text for path in FILES]
    batches: list[int] = []
    transcribe_all = model.transcribe_all

    def counted(audios, *args, **kwargs):
        batches.append(len(audios))
        return transcribe_all(audios, *args, **kwargs)

    monkeypatch.setattr(model, "transcribe_all", counted)
    with serve(batch_size=len(FILES), max_wait_ms=3000) as client, ThreadPoolExecutor(len(FILES)) as pool:
        answers = list(pool.map(lambda path: post(client, path), FILES))
    assert [answer.json()["text"] for answer in answers] == alone
    assert sum(batches) == len(FILES) and len(batches) < len(FILES)


def wait_until(condition) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_a_full_queue_answers_503_with_retry_after_and_the_queued_requests_are_served(
    serve, model, monkeypatch
) -> None:
    started, release = threading.Event(), threading.Event()
    transcribe_all = model.transcribe_all

    def held(audios, *args, **kwargs):
        started.set()
        release.wait(30)
        return transcribe_all(audios, *args, **kwargs)

    monkeypatch.setattr(model, "transcribe_all", held)
    with serve(batch_size=1, max_wait_ms=0, queue_size=1) as client, ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(post, client, FILES[0])
            assert started.wait(20)
            second = pool.submit(post, client, FILES[1])
            wait_until(lambda: client.get("/health").json()["queued"] == 1)
            refused = post(client, FILES[2])
        finally:
            release.set()
        assert first.result().status_code == second.result().status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "queue_full"


def raw_request(port: int, path: Path) -> socket.socket:
    """A socket that has sent a whole transcription request for `path` to 127.0.0.1:`port`."""
    data = path.read_bytes()
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.flac"\r\n\r\n'
    body = head + data + b"\r\n--b--\r\n"
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return connection


def test_a_client_that_hangs_up_while_queued_frees_its_place_and_is_never_decoded(model, model_dir, monkeypatch):
    started, release = threading.Event(), threading.Event()
    decoded: list[int] = []
    transcribe_all = model.transcribe_all

    def held(audios, *args, **kwargs):
        decoded.append(len(audios))
        started.set()
        release.wait(30)
        return transcribe_all(audios, *args, **kwargs)

    monkeypatch.setattr(model, "transcribe_all", held)
    app = create_app(model, model_dir, model.config(), ServeConfig(batch_size=1, max_wait_ms=0, queue_size=4))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]

    def health() -> dict:
        return httpx.get(f"http://127.0.0.1:{port}/health").json()

    try:
        first = raw_request(port, FILES[0])
        assert started.wait(20)  # the first request is being decoded
        second = raw_request(port, FILES[1])
        wait_until(lambda: health()["queued"] == 1)
        second.close()  # its client gives up while it waits
        wait_until(lambda: health()["queued"] == 0)
        release.set()
        answer = first.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        first.close()
        assert health() == {"status": "ok", "model": "tiny", "queued": 0, "decoding": 0}
        assert decoded == [1]  # the second request was never decoded
    finally:
        release.set()
        server.should_exit = True
        thread.join(30)


def test_a_model_is_served_under_its_directory_s_name_or_its_experiment_s_or_the_one_given(
    model, model_dir, tmp_path
) -> None:
    assert model_name(model_dir) == "tiny" and model_name(tmp_path / "exp" / "demo" / "model") == "demo"
    with TestClient(create_app(model, model_dir, model.config(), name="demo-v2")) as client:
        assert [card["id"] for card in client.get("/v1/models").json()["data"]] == ["demo-v2"]
        assert client.get("/health").json()["model"] == "demo-v2"


def test_with_a_decoding_thread_every_batch_is_decoded_on_that_one_thread(model, model_dir, monkeypatch) -> None:
    threads: set[str] = set()
    transcribe_all = model.transcribe_all

    def recorded(audios, *args, **kwargs):
        threads.add(threading.current_thread().name)
        return transcribe_all(audios, *args, **kwargs)

    monkeypatch.setattr(model, "transcribe_all", recorded)
    decoder = decoding_thread()
    try:
        app = create_app(model, model_dir, model.config(), ServeConfig(batch_size=2), decoder=decoder)
        with TestClient(app) as client, ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda path: post(client, path), FILES))
    finally:
        decoder.shutdown()
    assert all(answer.status_code == 200 for answer in answers)
    assert len(threads) == 1 and next(iter(threads)).startswith("asr-decode")
