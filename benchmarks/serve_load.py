"""How many transcription requests `asr serve` answers a second, and how long each waits, with one
client and with several at once (where its batching should pay).

    .venv/bin/python benchmarks/serve_load.py MODEL_DIR [--audio FILE] [--requests 48]
        [--clients 1,8] [--batch-size 8] [--max-wait-ms 20] [--device cpu]

Starts `asr serve` on a free loopback port (127.0.0.1 only) with the model directory, waits for
/health, then for each number of concurrent clients sends `--requests` transcription requests of
the same file (json format) and prints one JSON line: requests a second, the median and 95th
percentile latency in seconds (from sending a request to its last byte), and the status codes
seen. The server is stopped at the end, whatever happens. Run it with nothing else on the cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AUDIO = ROOT / "tests" / "fixtures" / "LibriSpeech" / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """`asr serve` on a free loopback port, and its base URL once /health answers."""
    command = [
        sys.executable, "-m", "asr", "serve", "--model", str(args.model_dir), "--host", "127.0.0.1", "--port", "0",
        "--device", args.device, "--batch-size", str(args.batch_size), "--max-wait-ms", str(args.max_wait_ms),
        "--queue", str(max(args.clients) * 2),
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    found = re.search(r"at (http://127\.0\.0\.1:\d+)/ ", server.stdout.readline())
    if found is None:
        server.terminate()
        raise SystemExit("asr serve printed no address; run it by hand to see why")
    base = found.group(1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5):
                return server, base
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("asr serve did not answer /health within 120 s")


def multipart(audio: Path) -> tuple[bytes, str]:
    """A transcription request's body (the file and response_format=json) and its Content-Type."""
    boundary = "asr-serve-load"
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="response_format"\r\n\r\njson\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{audio.name}"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            audio.read_bytes(),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


def one_request(url: str, body: bytes, content_type: str) -> tuple[float, int]:
    """Seconds from sending the request to reading its whole answer, and the status code."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    return time.perf_counter() - started, status


def load(base: str, body: bytes, content_type: str, requests: int, clients: int) -> dict:
    """`requests` requests from `clients` concurrent clients: throughput, latency percentiles, statuses."""
    url = f"{base}/v1/audio/transcriptions"
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: one_request(url, body, content_type), range(requests)))
    elapsed = time.perf_counter() - started
    latencies = sorted(seconds for seconds, _ in results)
    return {
        "clients": clients,
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 3),
        "p50_seconds": round(statistics.median(latencies), 4),
        "p95_seconds": round(latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))], 4),
        "statuses": dict(Counter(str(status) for _, status in results)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="model directory to serve")
    parser.add_argument("--audio", type=Path, default=DEFAULT_AUDIO, help="the recording every request sends")
    parser.add_argument("--requests", type=int, default=48, help="requests for each number of clients")
    parser.add_argument(
        "--clients", type=lambda text: [int(n) for n in text.split(",")], default=[1, 8], help="e.g. 1,8"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=20.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    body, content_type = multipart(args.audio)
    server, base = start_server(args)
    try:
        one_request(f"{base}/v1/audio/transcriptions", body, content_type)  # warm-up, not counted
        for clients in args.clients:
            result = load(base, body, content_type, args.requests, clients)
            settings = {"batch_size": args.batch_size, "max_wait_ms": args.max_wait_ms, "device": args.device}
            print(json.dumps({**result, **settings, "audio": args.audio.name, "machine": platform.machine()}))
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
