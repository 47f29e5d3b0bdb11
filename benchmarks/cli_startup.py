"""How fast the `asr` command answers before it does any work: `--help`, a sub-command's
`--help` and a usage error, each in a fresh process.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5] [--asr .venv/bin/asr]

Each command line runs `--repeats` times, one after the other; the JSON line of each gives
the median and the spread of the wall-clock seconds (from spawning the process to its exit)
and the largest peak resident memory of those runs (ru_maxrss of the child, from wait4), and
whether torch was imported (`python -X importtime`, run once more). Run it with nothing else
on the cores: start-up time is mostly reading files and importing modules.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("transcribe", "--help"),
    ("train", "--help"),
    ("synthesize", "--help"),
    ("evaluate", "--beam", "x"),  # a usage error: exit status 2
)


def run_once(command: list[str]) -> tuple[float, int, int]:
    """Wall-clock seconds, peak RSS in KiB and exit status of one run."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss, process.returncode


def imports_torch(command: list[str]) -> bool:
    """Whether the command imports torch (-X importtime lists every module imported)."""
    python, *rest = command
    finished = subprocess.run(
        [python, "-X", "importtime", *rest], capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    return any(line.split("|")[-1].strip() == "torch" for line in finished.stderr.splitlines())


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--asr", type=Path, default=Path(sys.executable).parent / "asr", help="the asr entry point")
    args = parser.parse_args()
    python = str(Path(sys.executable))
    for arguments in COMMANDS:
        runs = [run_once([str(args.asr), *arguments]) for _ in range(args.repeats)]
        seconds = [r[0] for r in runs]
        print(
            json.dumps(
                {
                    "command": " ".join(["asr", *arguments]),
                    "repeats": args.repeats,
                    "median_seconds": round(statistics.median(seconds), 3),
                    "min_seconds": round(min(seconds), 3),
                    "max_seconds": round(max(seconds), 3),
                    "peak_rss_mib": round(max(r[1] for r in runs) / 1024, 1),
                    "exit_status": sorted({r[2] for r in runs}),
                    "imports_torch": imports_torch([python, "-m", "asr", *arguments]),
                    "cpu": cpu_name(),
                    "cores": os.cpu_count(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
