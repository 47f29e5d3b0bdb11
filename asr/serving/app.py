"""The HTTP app: OpenAI's transcription API over a loaded model, a health check, the model list
and a one-page client.

    POST /v1/audio/transcriptions   multipart: file, model (any), response_format, language (any),
                                    timestamp_granularities[]; answers as OpenAI's API does
    GET  /v1/models                 the model (its directory's name) and its search settings
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

PAGE = "page.html"
"""The one-page client, shipped beside this module as package data."""


@dataclass(frozen=True)
class ServeConfig:
    """How the server takes requests: up to `batch_size` are decoded together, once that many wait
    or the oldest has waited `max_wait_ms` milliseconds; at most `queue_size` wait (the next gets
    503, told to retry after `retry_after_seconds`); an upload holds at most `max_upload_bytes` and
    `max_audio_seconds` of audio; with an `api_key`, every /v1 request must carry it as
    `Authorization: Bearer KEY`."""

    batch_size: int = 8
    max_wait_ms: float = 20.0
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


def create_app(
    model: Recognizer, model_dir: str | Path, transcribe: TranscribeConfig, config: ServeConfig | None = None
) -> FastAPI:
    """The app that serves `model`, loaded from `model_dir` (its name is the model's id), decoding
    with `transcribe` (its search; word times are given where its `word_timestamps` is set).

    The queue's worker runs while the app's lifespan does (uvicorn, or `with TestClient(app)`).
    """
    config = config or ServeConfig()
    model_dir = Path(model_dir).resolve()
    name = model_dir.name
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
        batcher: Batcher[Path, Transcript | AudioError] = Batcher(
            decode, config.batch_size, config.max_wait_ms / 1000, config.queue_size
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
        body_limit = config.max_upload_bytes + FORM_SLACK
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > body_limit:
            raise too_large(config.max_upload_bytes)
        request = Request(request.scope, limited(request.receive, body_limit))
        try:
            async with request.form(max_files=1, max_fields=32) as form:
                return await transcribe_form(request, form)
        except UploadTooLarge:
            raise too_large(config.max_upload_bytes) from None

    async def transcribe_form(request: Request, form: FormData) -> Response:
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
        shown = shown_name(upload.filename)
        path, size = await save_upload(upload, request.app.state.folder, config.max_upload_bytes)
        try:
            result = await transcribe_file(request, path, shown)
        finally:
            path.unlink(missing_ok=True)
        body = render(result, response_format, language, granularities)
        if isinstance(body, dict):
            return JSONResponse(body)
        return Response(body, media_type=MEDIA_TYPES[response_format])

    async def transcribe_file(request: Request, path: Path, shown: str) -> Transcript:
        """The transcript of the saved upload at `path`, queued for the next batch; the APIError
        naming `shown` for a file that is no usable recording."""
        try:
            info = await asyncio.to_thread(audio_info, path)
        except AudioError as error:
            raise APIError(400, str(error).replace(str(path), shown), "file", "invalid_audio") from None
        if info.duration > config.max_audio_seconds:
            raise APIError(
                413,
                f"{shown}: {info.duration:.1f} s of audio; this server transcribes at most "
                f"{config.max_audio_seconds:g} s a request",
                "file",
                "audio_too_long",
            )
        batcher: Batcher[Path, Transcript | AudioError] = request.app.state.batcher
        try:
            job = batcher.submit(path)
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
            raise APIError(400, str(result).replace(str(path), shown), "file", "invalid_audio")
        return result

    return app


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
