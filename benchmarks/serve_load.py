"""How many transcription requests `asr serve` answers a second, and how long each waits, with one
client and with several at once (where its batching should pay).

    .venv/bin/python benchmarks/serve_load.py MODEL_DIR [--audio FILE ... | --audio-dir DIR
        --seconds 5] [--requests 64] [--clients 1,2,4,8] [--batch-size 8] [--max-wait-ms 50]

Starts `asr serve` on a free loopback port (127.0.0.1 only) with the model directory, waits for
/health, then for each number of concurrent clients sends `--requests` transcription requests
(json format), request i carrying recording i of the list, round and round, and prints one JSON
line: requests a second, the median and 95th percentile latency in seconds (from sending a request
to its last byte), and the status codes seen. A last line compares the most clients with one:
throughput ratio, and their p95 latency over one client's median (a request on its own). The
recordings are the --audio files, or those of --audio-dir (searched below it, sorted by path) that
last --seconds, give or take half a second. The server is stopped at the end, whatever happens.
Run it with nothing else on the cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import soundfile

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AUDIO = ROOT / "tests" / "fixtures" / "LibriSpeech" / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"


def start_server(args: argparse.Namespace, log: TextIO) -> tuple[subprocess.Popen, str]:
    """`asr serve -v` on a free loopback port, its log written to `log`, and its base URL once
    /health answers."""
    command = [
        sys.executable, "-m", "asr", "-v", "serve", "--model", str(args.model_dir), "--host", "127.0.0.1",
        "--port", "0", "--device", args.device, "--batch-size", str(args.batch_size),
        "--max-wait-ms", str(args.max_wait_ms), "--queue", str(max(args.clients) * 2),
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
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


def recordings(args: argparse.Namespace) -> list[Path]:
    """The --audio files, or the --audio-dir recordings of --seconds (within 0.5 s)."""
    if args.audio_dir is None:
        return args.audio or [DEFAULT_AUDIO]
    found = [
        path
        for path in sorted(args.audio_dir.rglob("*"))
        if path.suffix in (".flac", ".wav") and abs(soundfile.info(str(path)).duration - args.seconds) <= 0.5
    ]
    if not found:
        raise SystemExit(f"{args.audio_dir}: no .flac or .wav of {args.seconds} s (within 0.5 s)")
    return found[: args.requests]


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


def load(base: str, bodies: list[tuple[bytes, str]], requests: int, clients: int) -> dict:
    """`requests` requests from `clients` concurrent clients, request i with body i (modulo their
    number): throughput, latency percentiles, statuses."""
    url = f"{base}/v1/audio/transcriptions"
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda i: one_request(url, *bodies[i % len(bodies)]), range(requests)))
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


def batches(log: Path, start: int) -> tuple[dict, int]:
    """What the server's log says of the batches it decoded from byte `start` on (how many of each
    size, and the mean seconds a batch took to decode), and where the log ends."""
    text = log.read_text()
    found = re.findall(r"decoded a batch of (\d+) in ([\d.]+) s", text[start:])
    sizes = Counter(size for size, _ in found)
    decoding = statistics.mean(float(seconds) for _, seconds in found) if found else None
    return {
        "batches_by_size": dict(sorted(sizes.items(), key=lambda item: int(item[0]))),
        "mean_batch_decode_seconds": None if decoding is None else round(decoding, 4),
    }, len(text)


def cpu_name() -> str:
    """The CPU's model name (Linux), else what platform says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="model directory to serve")
    parser.add_argument("--audio", type=Path, nargs="+", help="the recordings the requests send, in turn")
    parser.add_argument("--audio-dir", type=Path, help="send the recordings below this folder that last --seconds")
    parser.add_argument("--seconds", type=float, default=5.0, help="with --audio-dir (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=64, help="requests for each number of clients")
    parser.add_argument(
        "--clients", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 4, 8], help="e.g. 1,8"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=50.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    audio = recordings(args)
    bodies = [multipart(path) for path in audio]
    seconds = [soundfile.info(str(path)).duration for path in audio]
    described = {
        "recordings": len(audio),
        "mean_audio_seconds": round(statistics.mean(seconds), 3),
        "batch_size": args.batch_size,
        "max_wait_ms": args.max_wait_ms,
        "device": args.device,
        "cpu": cpu_name(),
    }
    with tempfile.NamedTemporaryFile("w+", prefix="serve-load-", suffix=".log") as log_file:
        measure(args, bodies, described, log_file)


def measure(args: argparse.Namespace, bodies: list[tuple[bytes, str]], described: dict, log_file: TextIO) -> None:
    """Start the server (its log to `log_file`), load it with each number of clients, print the lines."""
    log = Path(log_file.name)
    server, base = start_server(args, log_file)
    try:
        for body in bodies[: max(args.clients)]:  # warm-up, not counted
            one_request(f"{base}/v1/audio/transcriptions", *body)
        _, seen = batches(log, 0)
        results = []
        for clients in args.clients:
            results.append(load(base, bodies, args.requests, clients))
            decoded, seen = batches(log, seen)
            print(json.dumps({**results[-1], **decoded, **described}), flush=True)
        one, most = results[0], results[-1]
        print(
            json.dumps(
                {
                    "compared": f"{most['clients']} clients with {one['clients']}",
                    "throughput_ratio": round(most["requests_per_second"] / one["requests_per_second"], 3),
                    "p95_over_one_client_median": round(most["p95_seconds"] / one["p50_seconds"], 3),
                    **described,
                }
            )
        )
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
