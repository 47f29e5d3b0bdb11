"""Speed of the LAS model on a fixed, seeded workload; prints one JSON line per measurement.

    .venv/bin/python benchmarks/model_speed.py [--device cpu|cuda] [--threads 2] [--repeats 5] [--bf16] [--compile]

Workload (the model issue's): 16 utterances of 80-dim features, lengths evenly spread
over 800..1500 frames (184 s of audio at 10 ms a frame), character targets of
frames // 8 over a 32-symbol vocabulary; listener 4 BiLSTM layers x 320 units with 2
pyramid reductions (4x), location-aware attention of 320, one 320-unit speller LSTM.

Measured: a training step (forward + loss + backward; median of `repeats` after 2
warm-ups), greedy decoding of the batch and beam-10 decoding of the batch with a fixed
length (EOS suppressed until half the listener frames). Each with its real-time factor
(seconds / 184 s of audio) and the process CPU seconds it took: on an unshared machine
these are about threads x seconds, so a lower ratio shows the run was disturbed.
On a GPU, bf16 autocast (on a CPU too with --bf16). `--compile` compiles the listener and
the attention as `compile: true` in training does; the compile time is reported apart.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch

from asr.decoding import SearchConfig, beam_search, greedy_search
from asr.model import LAS, AttentionConfig, LASConfig, ListenerConfig, SpellerConfig
from asr.text import SPECIALS, Vocabulary
from asr.training import compile_model

UTTERANCES = 16
FRAME_SECONDS = 0.01


def workload(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Features (16, 1500, 80), lengths, targets (16, 187), target lengths, audio seconds."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.linspace(800, 1500, UTTERANCES).round().long()
    features = torch.randn(UTTERANCES, int(lengths.max()), 80, generator=generator)
    features *= (torch.arange(features.shape[1])[None, :] < lengths[:, None])[..., None]
    target_lengths = lengths // 8
    targets = torch.randint(len(SPECIALS), 32, (UTTERANCES, int(target_lengths.max())), generator=generator)
    targets[torch.arange(targets.shape[1])[None, :] >= target_lengths[:, None]] = 1  # pad id
    seconds = float(lengths.sum()) * FRAME_SECONDS
    return features.to(device), lengths, targets.to(device), target_lengths, seconds


def model_config() -> LASConfig:
    return LASConfig(
        listener=ListenerConfig(layers=4, units=320, reduce=(1, 2), dropout=0.1),
        attention=AttentionConfig(kind="location", dim=320),
        speller=SpellerConfig(embedding_dim=320, units=320, layers=1, dropout=0.1),
        vocab_size=32,
        ctc_weight=0.3,
        label_smoothing=0.1,
    )


def timed(run: Callable[[], object], device: torch.device, repeats: int, warmups: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds of `repeats` runs after `warmups`.

    CPU seconds near threads x wall seconds say the machine was not shared during the run.
    """
    walls, cpus = [], []
    for i in range(warmups + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started, cpu_started = time.perf_counter(), time.process_time()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmups:
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu_started)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (default: on a GPU only)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the listener and the attention")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = LAS(model_config()).to(device)
    features, lengths, targets, target_lengths, seconds = workload(device)
    vocab = Vocabulary(SPECIALS + tuple(chr(ord("a") + i) for i in range(32 - len(SPECIALS))))
    bf16 = device.type == "cuda" if args.bf16 is None else args.bf16
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": args.threads,
        "bf16": bf16,
        "torch": torch.__version__,
        "compile": args.compile,
    }

    def report(name: str, times: tuple[float, float], **extra: object) -> None:
        wall, cpu = times
        measured = {"seconds": round(wall, 4), "cpu_seconds": round(cpu, 4), "rtf": round(wall / seconds, 5)}
        print(json.dumps({"measure": name, **measured, **extra, **machine}), flush=True)

    def train_step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast:
            losses = model(features, lengths, targets, target_lengths)
        losses.total.backward()

    if args.compile:
        compile_model(model)
        report("compile_and_first_step", timed(train_step, device, repeats=1, warmups=0))
    report("train_step", timed(train_step, device, args.repeats, warmups=2), utterances=UTTERANCES)
    model.eval()
    greedy = SearchConfig(beam=1, max_length_ratio=0.5, min_length_ratio=0.5)
    beam10 = SearchConfig(beam=10, max_length_ratio=0.5, min_length_ratio=0.5)
    with torch.no_grad(), autocast:
        report("greedy_decode", timed(lambda: greedy_search(model, features, lengths, vocab, greedy), device, 3, 1))
        report("beam10_decode", timed(lambda: beam_search(model, features, lengths, vocab, beam10), device, 3, 1))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MiB (process peak RSS)
    parameters = sum(p.numel() for p in model.parameters())
    print(json.dumps({"measure": "model", "parameters": parameters, "peak_memory_mib": round(peak), **machine}))


if __name__ == "__main__":
    main()
