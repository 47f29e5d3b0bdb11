"""`asr serve`: a model behind OpenAI's transcription API, over HTTP (uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from asr.cli.arguments import add_model_options, positive_int, positive_seconds, search_overrides
from asr.errors import UserError

API_KEY_VARIABLE = "ASR_API_KEY"
"""The environment variable that gives the API key when --api-key does not (a command line is
visible to every user of the machine; the environment is not)."""


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {value}")
    return value


def milliseconds(text: str) -> float:
    """An argparse type: a finite number of milliseconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of milliseconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of milliseconds, 0 or more, got {text}")
    return value


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host` and `port` (0: a free one the system picks); UserError naming
    the option when the address cannot be had."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise UserError(f"--host {host}: not an address of this machine ({error.strerror})") from None
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        reason = (error.strerror or str(error)).lower()
        raise UserError(f"--host {host} --port {port}: {reason}; choose another port (0: any free one)") from None
    return sock


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from asr.serving.app import ServeConfig, create_app, decoding_thread, model_name
        from asr.serving.uploads import MEGABYTE
    except ModuleNotFoundError as error:
        raise UserError(
            f"asr serve needs {error.name}, which is not installed: install the serve extra "
            "(pip install 'las-asr[serve]')"
        ) from None
    from asr.transcribe import load_model

    if args.api_key == "":
        raise UserError("--api-key is empty; give a key, or leave the option out to serve without one")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_VARIABLE) or None
    config = ServeConfig(
        batch_size=args.batch_size,
        max_wait_ms=args.max_wait_ms,
        queue_size=args.queue,
        max_upload_bytes=args.max_upload_mb * MEGABYTE,
        max_audio_seconds=args.max_audio_seconds,
        api_key=api_key,
    )
    sock = listening_socket(args.host, args.port)  # before the model loads: a port in use fails at once
    decoder = decoding_thread()
    try:
        model = decoder.submit(load_model, args.model, args.device, lm=args.lm, int8=args.int8).result()
        transcribe = model.config(args.batch_size, word_timestamps=True, **search_overrides(args))
        name = args.name or model_name(args.model)
        app = create_app(model, args.model, transcribe, config, name=name, decoder=decoder)
    except BaseException:
        sock.close()
        decoder.shutdown(wait=False)
        raise
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(f"asr: serving {name} at {url}/ (OpenAI API base URL: {url}/v1)", flush=True)
    if api_key is None and not ipaddress.ip_address(host).is_loopback:
        print(f"asr: warning: {host} is reachable from other machines and no --api-key is set", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=args.verbose, lifespan="on"))
    try:
        server.run(sockets=[sock])
    finally:
        decoder.shutdown(wait=False, cancel_futures=True)
    return 0


def add_serve(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve a model over HTTP with OpenAI's transcription API",
        description="Serve a model directory over HTTP: POST /v1/audio/transcriptions as OpenAI's API (the "
        "openai client works with base_url=http://HOST:PORT/v1; response formats json, text, srt, vtt, "
        "verbose_json), GET /v1/models, GET /health, and a page at / that transcribes a file or the "
        "microphone. Concurrent requests are decoded together in batches; a full queue answers 503. Binds "
        "127.0.0.1 (this machine only) unless --host says otherwise. Needs the serve extra.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; 0.0.0.0: every interface (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=port_number, default=8000, help="port to listen on; 0: any free one (default: %(default)s)"
    )
    add_model_options(parser)
    parser.add_argument(
        "--name", help="the model's id in /v1/models (default: the directory's name, or its parent's for EXP_DIR/model)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        help="requests decoded together, and pieces of audio per batch (default: %(default)s)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=milliseconds,
        default=50.0,
        help="how long a batch that is not full may wait for requests being received, or for the clients of "
        "the batch before it to come back (a request that comes alone does not wait) (default: %(default)s)",
    )
    parser.add_argument(
        "--queue", type=positive_int, default=64, help="requests that may wait; more get 503 (default: %(default)s)"
    )
    parser.add_argument(
        "--max-upload-mb", type=positive_int, default=100, help="largest upload, in MB (default: %(default)s)"
    )
    parser.add_argument(
        "--max-audio-seconds",
        type=positive_seconds,
        default=3600.0,
        help="longest recording a request may hold, in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        help=f"require 'Authorization: Bearer KEY' on /v1 requests (default: ${API_KEY_VARIABLE} if set, else none)",
    )
    parser.set_defaults(run=run_serve)
