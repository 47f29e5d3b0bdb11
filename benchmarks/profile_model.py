"""Where the time of a training step and of beam-10 search goes, on model_speed.py's workload.

    .venv/bin/python benchmarks/profile_model.py [--threads 2] [--measures train,beam10] [--top 15] [--tiny]

For each measure, after one untimed warm-up run, one run under torch.profiler (self CPU
time by operator) and one under cProfile (time spent in each Python function itself, the
interpreter's share: the step loops of the speller and the search are Python). Prints one
JSON line per measure and view with the `top` entries, largest first, each with its share
of the run. Profiling slows the run: read the shares, not the seconds; model_speed.py
times.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from collections.abc import Callable
from pathlib import Path

import torch
from model_speed import FRAME_SECONDS, benchmark_setup  # this script's folder is on sys.path
from torch.profiler import ProfilerActivity, profile

from asr.decoding.beam import beam_search
from asr.decoding.config import SearchConfig
from asr.model import LAS

MEASURES = ("train", "beam10")


def operator_table(run: Callable[[], object], top: int) -> list[dict[str, object]]:
    """The `top` operators by self CPU time of one run of `run`: name, calls, self milliseconds, share."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        run()
    events = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    total = sum(event.self_cpu_time_total for event in events)
    events.sort(key=lambda event: event.self_cpu_time_total, reverse=True)
    return [
        {
            "operator": event.key,
            "calls": event.count,
            "self_ms": round(event.self_cpu_time_total / 1000, 1),
            "share": round(event.self_cpu_time_total / total, 4),
        }
        for event in events[:top]
    ]


def python_table(run: Callable[[], object], top: int) -> list[dict[str, object]]:
    """The `top` Python functions by their own time in one run of `run`: file:line(name), calls, ms, share."""
    profiler = cProfile.Profile()
    profiler.runcall(run)
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (primitive calls, calls, own s, cumulative s, callers)
    total = sum(entry[2] for entry in stats.values())
    rows = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return [
        {
            "function": f"{Path(file).name}:{line}({name})",
            "calls": entry[1],
            "own_ms": round(entry[2] * 1000, 1),
            "share": round(entry[2] / total, 4),
        }
        for (file, line, name), entry in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--measures", default=",".join(MEASURES), help="default: train,beam10")
    parser.add_argument("--top", type=int, default=15, help="entries per table (default: %(default)s)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model on a tenth of the lengths (script check)")
    args = parser.parse_args()
    measures = [name.strip() for name in args.measures.split(",") if name.strip()]
    if not measures or any(name not in MEASURES for name in measures):
        parser.error(f"--measures: expected some of {','.join(MEASURES)}, got {args.measures!r}")
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    config, vocab, work = benchmark_setup(device, args.tiny)
    torch.manual_seed(0)
    model = LAS(config)

    def train_step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        model(work.features, work.lengths, work.targets, work.target_lengths).total.backward()

    length = round(work.characters_per_second * FRAME_SECONDS * config.listener.subsampling, 6)
    search = SearchConfig(beam=10, max_length_ratio=length, min_length_ratio=length)

    def beam10() -> None:
        model.eval()
        with torch.no_grad():
            beam_search(model, work.features, work.lengths, vocab, search)

    runs = {"train": train_step, "beam10": beam10}
    for name in measures:
        run = runs[name]
        started = time.perf_counter()
        run()  # warm-up, and the unprofiled time
        seconds = time.perf_counter() - started
        for view, table in (("operators", operator_table), ("python", python_table)):
            record = {"measure": name, "view": view, "unprofiled_seconds": round(seconds, 3), "threads": args.threads}
            print(json.dumps({**record, "workload": work.description, "top": table(run, args.top)}), flush=True)


if __name__ == "__main__":
    main()
