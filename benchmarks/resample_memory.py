"""Peak memory and time of reading a recording at unusual sample rates, as `asr transcribe` reads it.

    .venv/bin/python benchmarks/resample_memory.py [--seconds 30] [--rates 44101,22254,96001,384000,8000]

For each rate, a fresh process writes a WAV of noise at that rate (`--seconds` long),
then times `asr.frontend.audio.load_audio` (decode + resample to 16 kHz) and reports its peak
resident memory (ru_maxrss of that process, which includes Python and torch). One JSON
line per rate.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(rate: int, seconds: float) -> dict:
    """In this process: write the file, read it once, return the figures."""
    import numpy as np
    import soundfile

    from asr.frontend.audio import load_audio

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"noise-{rate}.wav"
        samples = np.random.default_rng(0).normal(0, 0.1, int(seconds * rate)).astype(np.float32)
        soundfile.write(path, samples, rate, subtype="PCM_16")
        del samples
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        waveform, _ = load_audio(path)
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "workload": f"load_audio of {seconds:g} s of 16-bit WAV noise at {rate} Hz, resampled to 16 kHz",
        "rate": rate,
        "seconds": round(elapsed, 3),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_before_read_mib": round(before / 1024, 1),
        "output_samples": int(waveform.shape[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rates", default="44101,22254,96001,384000,8000,44100")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one rate in this process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.seconds)))
        return
    for rate in (int(r) for r in args.rates.split(",")):
        command = [sys.executable, __file__, "--one", str(rate), "--seconds", str(args.seconds)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        print(result.stdout.strip() if result.returncode == 0 else json.dumps({"rate": rate, "error": result.stderr}))


if __name__ == "__main__":
    main()
