"""The HTTP app: OpenAI's transcription API over a loaded model, a health check, the model list
and a one-page client.

    POST /v1/audio/transcriptions   multipart: file, model (any), response_format, language (any),
                                    timestamp_granularities[]; answers as OpenAI's API does
    GET  /v1/models                 the model (its name) and its search settings
    GET  /health                    {"status": "ok", ...} and the queue's length
    GET  /                          a page that uploads a file or records the microphone

Every error is OpenAI's `{"error": {...}}` with a status that says whose fault it is: 400 for a
request that names what it got wrong, 401 without the API key, 413 for an upload or a recording
beyond the limits, 503 (with Retry-After) while the queue is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Receive

from asr.frontend.audio import AudioError, audio_info
from asr.serving.batching import Batcher, Job, QueueFull, ServerClosing
from asr.serving.errors import APIError, error_body
from asr.serving.formats import GRANULARITIES, MEDIA_TYPES, RESPONSE_FORMATS, model_language, render
from asr.serving.uploads import FORM_SLACK, MEGABYTE, UploadTooLarge, limited, private_folder, save_upload, shown_name
from asr.transcribe import Recognizer, TranscribeConfig, Transcript

log = logging.getLogger(__name__)

DecodingQueue = Batcher[Path, Transcript | AudioError]
"""The queue of saved uploads, each decoded into its transcript or the error that stopped it."""

PAGE = "page.html"
"""The one-page client, shipped beside this module as package data."""


@dataclass(frozen=True)
class ServeConfig:
    """How the server takes requests: up to `batch_size` are decoded together, once that many wait,
    or the oldest has waited `max_wait_ms` milliseconds, or at once when no other request is being
    received and the oldest came to an idle server (`asr.serving.batching`); at most `queue_size`
    wait (the next gets 503, told to retry after `retry_after_seconds`); an upload holds at most
    `max_upload_bytes` and `max_audio_seconds` of audio; with an `api_key`, every /v1 request must
    carry it as `Authorization: Bearer KEY`."""

    batch_size: int = 8
    max_wait_ms: float = 50.0
    queue_size: int = 64
    max_upload_bytes: int = 100 * MEGABYTE
    max_audio_seconds: float = 3600.0
    api_key: str | None = None
    retry_after_seconds: int = 1

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.queue_size < 1 or self.max_upload_bytes < 1:
            raise ValueError("batch_size, queue_size and max_upload_bytes must be at least 1")
        if not 0 <= self.max_wait_ms < float("inf") or not 0 < self.max_audio_seconds < float("inf"):
            raise ValueError("need a finite max_wait_ms >= 0 and a finite max_audio_seconds > 0")
        if self.api_key == "":
            raise ValueError("api_key must not be empty (None: no key)")


def decoding_thread() -> ThreadPoolExecutor:
    """An executor of one thread, to load the model on and decode on: the one thread of the
    process that runs PyTorch (see `create_app`)."""
    return ThreadPoolExecutor(1, thread_name_prefix="asr-decode")


def model_name(model_dir: Path) -> str:
    """The id a model directory is served under: its name, or its parent's when it is called
    "model" (asr train's EXP_DIR/model: exp/demo/model is "demo")."""
    model_dir = model_dir.resolve()
    return model_dir.parent.name if model_dir.name == "model" and model_dir.parent.name else model_dir.name


def create_app(
    model: Recognizer,
    model_dir: str | Path,
    transcribe: TranscribeConfig,
    config: ServeConfig | None = None,
    name: str | None = None,
    decoder: Executor | None = None,
) -> FastAPI:
    """The app that serves `model`, loaded from `model_dir`, as `name` (default: `model_name`),
    decoding with `transcribe` (its search; word times are given where its `word_timestamps` is set)
    on `decoder` (default: a thread of the event loop's pool).

    PyTorch's CPU kernels ran about twice as slow on a 2-core VM on a thread other than the first
    of the process to run them (`benchmarks/torch_threads.py`): `asr serve` loads the model and
    decodes on one thread of its own (`decoding_thread`).

    The queue's worker runs while the app's lifespan does (uvicorn, or `with TestClient(app)`).
    """
    config = config or ServeConfig()
    model_dir = Path(model_dir).resolve()
    name = name or model_name(model_dir)
    language = model_language(model.loaded.vocab)
    card = {
        "id": name,
        "object": "model",
        "created": int(model_dir.stat().st_mtime),
        "owned_by": "asr",
        "language": language,
        "normalizer": model.loaded.vocab.text.normalizer,
        "max_audio_seconds": config.max_audio_seconds,
        "search": dataclasses.asdict(transcribe.search),
    }
    page = files("asr.serving").joinpath(PAGE).read_text(encoding="utf-8")

    def decode(paths: list[Path]) -> list[Transcript | AudioError]:
        results = dict(model.transcribe_all(paths, transcribe))
        return [results[index] for index in range(len(paths))]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher: DecodingQueue = Batcher(
            decode, config.batch_size, config.max_wait_ms / 1000, config.queue_size, decoder
        )
        app.state.batcher, app.state.folder = batcher, private_folder()
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            shutil.rmtree(app.state.folder, ignore_errors=True)

    app = FastAPI(title="asr serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = {
            404: f"no such route: {request.method} {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(error.status_code, str(error.detail))
        kind = "server_error" if error.status_code >= 500 else "invalid_request_error"
        return JSONResponse(error_body(message, kind), status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        message = "the server failed to transcribe this request; its log says why"
        return JSONResponse(error_body(message, "server_error"), status_code=500)

    def check_key(request: Request) -> None:
        if config.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(401, "no API key: send it as the header 'Authorization: Bearer KEY'", code="invalid_api_key")
        if not hmac.compare_digest(token.strip().encode(), config.api_key.encode()):
            raise APIError(401, "wrong API key (the one asr serve --api-key was given)", code="invalid_api_key")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        batcher = request.app.state.batcher
        return {"status": "ok", "model": name, "queued": batcher.queued, "decoding": batcher.decoding}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_key(request)
        return {"object": "list", "data": [card]}

    @app.get("/v1/models/{model_id}")
    async def one_model(request: Request, model_id: str) -> dict[str, Any]:
        check_key(request)
        if model_id != name:
            raise APIError(404, f"no model {model_id!r}; this server has {name!r}", "model", "model_not_found")
        return card

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        check_key(request)
        batcher: DecodingQueue = request.app.state.batcher
        with batcher.expecting():  # a batch about to start waits for this request while it is read
            received = await receive(request)
        try:
            result = await decoded(request, batcher, received)
        finally:
            received.path.unlink(missing_ok=True)
        body = render(result, received.response_format, language, received.granularities)
        if isinstance(body, dict):
            return JSONResponse(body)
        return Response(body, media_type=MEDIA_TYPES[received.response_format])

    async def receive(request: Request) -> Received:
        """The request's form read within the upload limit, its fields checked, its file saved in
        the private folder and checked to be a recording within the limits."""
        body_limit = config.max_upload_bytes + FORM_SLACK
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > body_limit:
            raise too_large(config.max_upload_bytes)
        request = Request(request.scope, limited(request.receive, body_limit))
        try:
            async with request.form(max_files=1, max_fields=32) as form:
                received = await save_form(request, form)
        except UploadTooLarge:
            raise too_large(config.max_upload_bytes) from None
        try:
            await check_recording(received)
        except BaseException:
            received.path.unlink(missing_ok=True)
            raise
        return received

    async def save_form(request: Request, form: FormData) -> Received:
        response_format = text_field(form, "response_format") or "json"
        if response_format not in RESPONSE_FORMATS:
            choices = ", ".join(RESPONSE_FORMATS)
            raise APIError(400, f"response_format {response_format!r} is not one of {choices}", "response_format")
        granularities = tuple(form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities"))
        unknown = [str(value) for value in granularities if value not in GRANULARITIES]
        if unknown:
            given, choices = ", ".join(map(repr, unknown)), ", ".join(GRANULARITIES)
            raise APIError(
                400, f"timestamp_granularities[] {given}: choose from {choices}", "timestamp_granularities[]"
            )
        if (text_field(form, "stream") or "false").lower() not in ("false", "0"):
            raise APIError(400, "stream: this server does not stream transcripts; leave stream out", "stream")
        upload = form.get("file")
        if upload is None:
            raise APIError(400, missing_file(request, form), "file")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "file: a text field, not a file; send the recording as a file upload", "file")
        path, _ = await save_upload(upload, request.app.state.folder, config.max_upload_bytes)
        return Received(path, shown_name(upload.filename), response_format, granularities)

    async def check_recording(received: Received) -> None:
        """APIError naming the client's file when the saved upload is no usable recording, or too long."""
        try:
            info = await asyncio.to_thread(audio_info, received.path)
        except AudioError as error:
            raise APIError(400, received.message(error), "file", "invalid_audio") from None
        if info.duration > config.max_audio_seconds:
            raise APIError(
                413,
                f"{received.shown}: {info.duration:.1f} s of audio; this server transcribes at most "
                f"{config.max_audio_seconds:g} s a request",
                "file",
                "audio_too_long",
            )

    async def decoded(request: Request, batcher: DecodingQueue, received: Received) -> Transcript:
        """The transcript of the received recording, queued for the next batch."""
        try:
            job = batcher.submit(received.path)
        except QueueFull:
            raise APIError(
                503,
                "the server is busy: every place in its queue is taken; try again shortly",
                code="queue_full",
                kind="server_error",
                headers={"Retry-After": str(config.retry_after_seconds)},
            ) from None
        try:
            result = await result_unless_gone(batcher, job, request.receive)
        except ServerClosing:
            raise APIError(503, "the server is shutting down", code="shutting_down", kind="server_error") from None
        if result is None:
            raise APIError(499, "the client closed the request before its transcript was ready")
        if isinstance(result, AudioError):
            raise APIError(400, received.message(result), "file", "invalid_audio")
        return result

    return app


@dataclass(frozen=True)
class Received:
    """A transcription request read and checked: its recording saved at `path` (the server's
    name), the client's name for it as messages show it, and the response asked for."""

    path: Path
    shown: str
    response_format: str
    granularities: tuple[str, ...]

    def message(self, error: AudioError) -> str:
        """`error`'s message with the client's name for the file instead of the server's path."""
        return str(error).replace(str(self.path), self.shown)


def text_field(form: FormData, name: str) -> str | None:
    """The text value of form field `name`, or None when it is missing; APIError when it is a file."""
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise APIError(400, f"{name}: a file, not a text field", name)
    return value


def missing_file(request: Request, form: FormData) -> str:
    """Why a request has no `file`: not a multipart form, or the file under another name."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip() or "none"
    if content_type != "multipart/form-data":
        return f"no file: send multipart/form-data with the recording as 'file' (got Content-Type {content_type})"
    fields = sorted(set(form.keys()))
    got = f" (got fields: {', '.join(fields)})" if fields else " (the form is empty)"
    return f"no file: send the recording as the multipart field 'file'{got}"


def too_large(limit: int) -> APIError:
    return APIError(
        413, f"the upload is larger than this server takes ({limit / MEGABYTE:g} MB)", "file", "file_too_large"
    )


async def client_gone(receive: Receive) -> None:
    """Returns when the client disconnects (once the request body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def result_unless_gone(batcher: Batcher[Path, Any], job: Job[Path, Any], receive: Receive) -> Any:
    """The result of `job`, or None when the client disconnects first: the job is then abandoned
    (not decoded if its batch has not started)."""
    gone = asyncio.ensure_future(client_gone(receive))
    try:
        await asyncio.wait({job.future, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not job.future.done():
            await batcher.abandon(job)
    return None if job.future.cancelled() else job.future.result()
