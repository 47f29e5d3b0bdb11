"""Speed of the LAS model on a seeded workload; prints one JSON line per measurement.

    .venv/bin/python benchmarks/model_speed.py [--device cpu|cuda] [--threads 2] [--repeats 5] [--bf16] [--compile]
        [--workload benchmark|librispeech|librispeech-test] [--config PATH] [--set KEY=VALUE] [--max-frames N]
        [--utterances N] [--measures train,greedy,beam10,beam10_ctc] [--ctc-weight 0.3] [--warmups 2] [--tiny]

Workloads (features are given: the log-mel front end is not timed):

- `benchmark` (the default; the model issue's): 16 utterances of 80-dim features,
  lengths evenly spread over 800..1500 frames (184 s of audio at 10 ms a frame),
  character targets of frames // 8 over a 32-symbol vocabulary; listener 4 BiLSTM layers
  x 320 units with 2 pyramid reductions (4x), location-aware attention of 320, one
  320-unit speller LSTM. `--utterances N` spreads N utterances over the same lengths.
- `librispeech`: one training batch as `asr train` would form it on LibriSpeech, with
  the model, `data.max_frames`, `data.filters` and `data.speed_perturb` of a training
  config (`--config`, default recipes/librispeech/conf/train_clean_100.yaml, with `--set`
  overrides). Utterance durations are drawn (seeded) from a LibriSpeech-like distribution:
  normal with mean 12.7 s and sd 3.0 s, clipped to 1..24.5 s (train-clean-100: mean
  12.7 s, most between 10 and 16.5 s, longest 24.5 s), then the config's filters; the
  batch is the run of sorted durations around the median that fills `max_frames` padded
  frames as asr train's sampler counts them (at the slowest speed factor when
  speed_perturb is on), or `--utterances N` of them. Targets: 15 random characters per
  second of audio, about LibriSpeech's rate, over the default vocabulary.
- `librispeech-test`: what `asr evaluate` decodes on LibriSpeech's test sets at their
  longest, with the model of the training config: `--utterances N` (default 32) with
  durations spread evenly over 2..35 s (test-clean and test-other span 1.3..35 s), no
  filter; targets as above.

Measured: a training step (forward + loss + backward, no optimizer step; median of
`repeats` after `warmups`), greedy decoding of the batch and beam-10 decoding of the
batch with a fixed length (EOS suppressed until as many characters as the targets have
per second of audio). Each with its real-time factor (seconds / seconds of audio), the
process CPU seconds it took (on an unshared machine these are about threads x seconds,
so a lower ratio shows the run was disturbed) and the peak memory (GPU: most allocated
during that measure; CPU: the process's peak resident set during it). On a GPU, bf16
autocast (on a CPU too with --bf16). `--compile` compiles the listener and the attention as
`compile: true` in training does; the compile time is reported apart. `--tiny` swaps the
model for a tiny one (listener 2 x 32, speller 32) and shortens every utterance (and
max_frames) to a tenth, to check that a script runs: its figures mean nothing. Every line
names its workload.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from asr.config import apply_overrides, from_dict, read_yaml
from asr.data.manifest import FilterConfig
from asr.decoding.beam import beam_search
from asr.decoding.config import SearchConfig
from asr.decoding.greedy import greedy_search
from asr.frontend.augment import SPEED_FACTORS
from asr.frontend.features import FeatureConfig
from asr.model import LAS, AttentionConfig, LASConfig, ListenerConfig, SpellerConfig
from asr.text import SPECIALS, Vocabulary

UTTERANCES = 16
FRAME_SECONDS = 0.01
LIBRISPEECH_CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / "conf" / "train_clean_100.yaml"
DURATION_MEAN, DURATION_SD, SHORTEST, LONGEST = 12.7, 3.0, 1.0, 24.5
"""Seconds: the LibriSpeech-like duration distribution (normal, clipped)."""
TEST_SPAN, TEST_UTTERANCES = (2.0, 35.0), 32
"""Seconds and count of the librispeech-test workload's utterances."""
POOL = 4000
"""Durations drawn for the librispeech workload before its batch is cut from them."""
CHARACTERS_PER_SECOND = 15.0
MEASURES = ("train", "greedy", "beam10", "beam10_ctc")
DEFAULT_MEASURES = MEASURES[:3]


@dataclass(frozen=True)
class Workload:
    """A batch to time: features (B, T, 80) and lengths (B,), targets (B, L) and lengths (B,), all on
    the device; its seconds of audio, target characters per second of audio, and a description."""

    features: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    seconds: float
    characters_per_second: float
    description: dict[str, object]


def _padded(
    lengths: torch.Tensor, target_lengths: torch.Tensor, vocab_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features (B, T, 80), zero past each length, and random targets (B, L) padded with id 1."""
    features = torch.randn(len(lengths), int(lengths.max()), 80, generator=generator)
    features *= (torch.arange(features.shape[1])[None, :] < lengths[:, None])[..., None]
    targets = torch.randint(len(SPECIALS), vocab_size, (len(lengths), int(target_lengths.max())), generator=generator)
    targets[torch.arange(targets.shape[1])[None, :] >= target_lengths[:, None]] = 1  # pad id
    return features, targets


def benchmark_workload(device: torch.device, utterances: int = UTTERANCES, scale: float = 1.0) -> Workload:
    """`utterances` utterances spread over 800..1500 frames (times `scale`), targets of frames // 8 over 32 symbols."""
    generator = torch.Generator().manual_seed(0)
    lengths = (torch.linspace(800, 1500, utterances) * scale).round().long()
    target_lengths = lengths // 8
    features, targets = _padded(lengths, target_lengths, 32, generator)
    seconds = float(lengths.sum()) * FRAME_SECONDS
    description = {"name": "benchmark", "utterances": utterances, "audio_seconds": round(seconds, 2), "scale": scale}
    return Workload(
        features.to(device),
        lengths.to(device),
        targets.to(device),
        target_lengths.to(device),
        seconds,
        12.5,
        description,
    )  # fmt: skip (12.5 characters a second: frames // 8 at 10 ms a frame)


def librispeech_workload(
    device: torch.device,
    filters: FilterConfig,
    max_frames: int,
    speed_perturb: bool,
    vocab_size: int,
    utterances: int | None = None,
    scale: float = 1.0,
) -> Workload:
    """The batch around the median of seeded LibriSpeech-like durations (see the module's docstring);
    durations and `max_frames` times `scale` after the filters."""
    generator = torch.Generator().manual_seed(0)
    drawn = (torch.randn(POOL, generator=generator, dtype=torch.float64) * DURATION_SD + DURATION_MEAN).clamp(
        SHORTEST, LONGEST
    )
    longest_target = filters.max_target_length or 10**9
    durations = sorted(
        d * scale
        for d in drawn.tolist()
        if filters.min_duration <= d <= filters.max_duration and round(d * CHARACTERS_PER_SECOND) <= longest_target
    )
    max_frames = round(max_frames * scale)
    features_config = FeatureConfig()
    slowest = min(SPEED_FACTORS) if speed_perturb else 1.0
    counted = [features_config.frames_for_duration(d / slowest) for d in durations]  # as asr train's sampler counts

    def window(size: int) -> range:
        start = len(durations) // 2 - size // 2
        return range(start, start + size)

    if utterances is None:
        size = 1
        while size < len(durations) and (size + 1) * counted[window(size + 1)[-1]] <= max_frames:
            size += 1
    else:
        size = min(utterances, len(durations))
    chosen = [durations[i] for i in window(size)]
    lengths = torch.tensor([features_config.frames_for_duration(d) for d in chosen])
    extra = {"padded_frames": int(lengths.max()) * size, "max_frames": max_frames if utterances is None else None}
    extra |= {"speed_perturb": speed_perturb, "scale": scale}
    return _of_durations("librispeech", chosen, features_config, vocab_size, generator, device, extra)


def librispeech_test_workload(device: torch.device, vocab_size: int, utterances: int, scale: float = 1.0) -> Workload:
    """`utterances` durations spread evenly over TEST_SPAN (times `scale`), targets of 15 characters a second."""
    generator = torch.Generator().manual_seed(0)
    chosen = [d * scale for d in torch.linspace(*TEST_SPAN, utterances, dtype=torch.float64).tolist()]
    return _of_durations("librispeech-test", chosen, FeatureConfig(), vocab_size, generator, device, {"scale": scale})


def _of_durations(
    name: str,
    chosen: list[float],
    features_config: FeatureConfig,
    vocab_size: int,
    generator: torch.Generator,
    device: torch.device,
    extra: dict,
) -> Workload:
    """Random features and targets (15 characters a second) for utterances of `chosen` seconds, on `device`;
    the description names the workload, its durations and `extra`."""
    lengths = torch.tensor([features_config.frames_for_duration(d) for d in chosen])
    target_lengths = torch.tensor([round(d * CHARACTERS_PER_SECOND) for d in chosen])
    features, targets = _padded(lengths, target_lengths, vocab_size, generator)
    seconds = sum(chosen)
    description = {
        "name": name,
        "utterances": len(chosen),
        "audio_seconds": round(seconds, 2),
        "durations_s": [round(chosen[0], 2), round(chosen[len(chosen) // 2], 2), round(chosen[-1], 2)],
    } | extra
    return Workload(
        features.to(device), lengths.to(device), targets.to(device), target_lengths.to(device),
        seconds, CHARACTERS_PER_SECOND, description,
    )  # fmt: skip


def model_config() -> LASConfig:
    return LASConfig(
        listener=ListenerConfig(layers=4, units=320, reduce=(1, 2), dropout=0.1),
        attention=AttentionConfig(kind="location", dim=320),
        speller=SpellerConfig(embedding_dim=320, units=320, layers=1, dropout=0.1),
        vocab_size=32,
        ctc_weight=0.3,
        label_smoothing=0.1,
    )


def tiny_model_config(vocab_size: int) -> LASConfig:
    """For checking that a script runs: its figures mean nothing."""
    return LASConfig(
        listener=ListenerConfig(layers=2, units=32, reduce=(1,), dropout=0.1),
        attention=AttentionConfig(kind="location", dim=32),
        speller=SpellerConfig(embedding_dim=16, units=32, layers=1, dropout=0.1),
        vocab_size=vocab_size,
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


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: GPU, the allocator's; CPU, the process's peak resident set (Linux: clear_refs 5)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mib(device: torch.device) -> int:
    """GPU: the most allocated since the last reset of the peak; CPU: the process's peak resident set
    since the last reset (VmHWM; where /proc lacks it, the peak of the whole process)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)  # kB -> MiB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure_list(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names out of MEASURES."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in MEASURES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(MEASURES)}, got {text!r}")
    return names


def benchmark_setup(
    device: torch.device, tiny: bool = False, utterances: int = UTTERANCES
) -> tuple[LASConfig, Vocabulary, Workload]:
    """The benchmark workload's model config, its 32-symbol vocabulary and its batch (`tiny`: a tenth)."""
    vocab = Vocabulary(SPECIALS + tuple(chr(ord("a") + i) for i in range(32 - len(SPECIALS))))
    config = tiny_model_config(len(vocab)) if tiny else model_config()
    return config, vocab, benchmark_workload(device, utterances, 0.1 if tiny else 1.0)


def setup(args: argparse.Namespace, device: torch.device) -> tuple[LASConfig, Vocabulary, Workload]:
    """The model's config, the vocabulary and the batch that the arguments ask for."""
    scale = 0.1 if args.tiny else 1.0
    if args.workload == "benchmark":
        config, vocab, work = benchmark_setup(device, args.tiny, args.utterances or UTTERANCES)
        if args.set:  # model.* keys over the workload's model, e.g. model.speller.input_feeding=false
            config = from_dict(LASConfig, apply_overrides({"model": asdict(config)}, args.set)["model"], "model")
            work.description.update(overrides=args.set)
        return config, vocab, work
    vocab = Vocabulary.default()
    data = apply_overrides(read_yaml(args.config), args.set)
    config = from_dict(LASConfig, {**data.get("model", {}), "vocab_size": len(vocab)}, "model")
    if args.tiny:
        config = tiny_model_config(len(vocab))
    if args.workload == "librispeech-test":
        work = librispeech_test_workload(device, len(vocab), args.utterances or TEST_UTTERANCES, scale)
        work.description.update(config=str(args.config), overrides=args.set)
        return config, vocab, work
    batching = data.get("data", {})
    if args.max_frames is None and "max_frames" not in batching:
        raise SystemExit(f"{args.config}: no data.max_frames; give --max-frames")
    filters = from_dict(FilterConfig, batching.get("filters", {}), "data.filters")
    max_frames = args.max_frames or int(batching["max_frames"])
    speed_perturb = bool(batching.get("speed_perturb", False))
    work = librispeech_workload(device, filters, max_frames, speed_perturb, len(vocab), args.utterances, scale)
    work.description.update(config=str(args.config), overrides=args.set)
    return config, vocab, work


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps (decoding: at most 3)")
    parser.add_argument("--warmups", type=int, default=2, help="untimed training steps first (decoding: at most 1)")
    parser.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (default: on a GPU only)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the listener and the attention")
    parser.add_argument("--workload", choices=("benchmark", "librispeech", "librispeech-test"), default="benchmark")
    parser.add_argument("--config", type=Path, default=LIBRISPEECH_CONFIG, help="librispeech: the training config")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override (benchmark: model.*)"
    )
    parser.add_argument("--max-frames", type=int, help="librispeech: padded frames per batch (default: the config's)")
    parser.add_argument("--utterances", type=int, help="utterances in the batch (librispeech: instead of max-frames)")
    measures = f"some of {','.join(MEASURES)} (default: {','.join(DEFAULT_MEASURES)})"
    parser.add_argument("--measures", type=measure_list, default=DEFAULT_MEASURES, help=measures)
    parser.add_argument("--attention-window", type=int, default=0, help="search: frames the attention scores (0: all)")
    parser.add_argument("--ctc-weight", type=float, default=0.3, help="beam10_ctc: the search's CTC weight")
    parser.add_argument("--tiny", action="store_true", help="a tiny model on a tenth of the lengths (script check)")
    parser.add_argument(
        "--lm-config", type=Path, help="also beam-10 with shallow fusion: an untrained LM of this asr lm train config"
    )
    return parser.parse_args()


@dataclass
class Measures:
    """The model on its workload, and what every JSON line says about the machine."""

    model: LAS
    work: Workload
    vocab: Vocabulary
    device: torch.device
    bf16: bool
    machine: dict[str, object]
    args: argparse.Namespace
    peaks: list[int]
    """Peak memory (MiB) of each measure so far."""

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def report(self, name: str, times: tuple[float, float], **extra: object) -> None:
        wall, cpu = times
        measured = {"seconds": round(wall, 4), "cpu_seconds": round(cpu, 4), "rtf": round(wall / self.work.seconds, 5)}
        print(
            json.dumps({"measure": name, **measured, **extra, **self.machine, "workload": self.work.description}),
            flush=True,
        )

    def measured(self, run: Callable[[], object], repeats: int, warmups: int) -> tuple[tuple[float, float], int]:
        """timed(), and the peak memory (MiB) of these runs alone."""
        reset_peak_memory(self.device)
        times = timed(run, self.device, repeats, warmups)
        self.peaks.append(peak_memory_mib(self.device))
        return times, self.peaks[-1]

    def train_step(self) -> None:
        work = self.work
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        with self.autocast():
            losses = self.model(work.features, work.lengths, work.targets, work.target_lengths)
        losses.total.backward()

    def train(self) -> None:
        if self.args.compile:
            self.report("compile_and_first_step", self.measured(self.train_step, repeats=1, warmups=0)[0])
        times, peak = self.measured(self.train_step, self.args.repeats, self.args.warmups)
        utterances = len(self.work.lengths)
        rate = round(utterances / times[0], 3)
        self.report("train_step", times, utterances=utterances, utterances_per_second=rate, peak_memory_mib=peak)

    def decode(
        self,
        name: str,
        search: Callable[..., object],
        beam: int,
        lm: torch.nn.Module | None = None,
        ctc_weight: float = 0.0,
    ) -> None:
        work, window = self.work, self.args.attention_window
        length = round(
            work.characters_per_second * FRAME_SECONDS * self.model.config.listener.subsampling, 6
        )  # per frame
        fusion = 0.3 if lm is not None else 0.0
        search_config = SearchConfig(
            beam=beam,
            max_length_ratio=length,
            min_length_ratio=length,
            lm_weight=fusion,
            ctc_weight=ctc_weight,
            attention_window=window,
        )
        self.model.eval()
        with torch.no_grad(), self.autocast():
            times, peak = self.measured(
                lambda: search(self.model, work.features, work.lengths, self.vocab, search_config, lm),
                min(3, self.args.repeats),
                min(1, self.args.warmups),
            )
        self.report(
            name,
            times,
            utterances=len(work.lengths),
            beam=beam,
            ctc_weight=ctc_weight,
            lm_weight=fusion,
            attention_window=window,
            peak_memory_mib=peak,
        )

    def untrained_lm(self, config: Path) -> torch.nn.Module:
        """An LM of the `asr lm train` config's model section, seeded, untrained."""
        from asr.lm import CharLM, LMConfig  # here: the LM alone, as the model

        lm_section = apply_overrides(read_yaml(config), []).get("model", {})
        torch.manual_seed(0)
        lm_config = from_dict(LMConfig, {**lm_section, "vocab_size": len(self.vocab)}, "model")
        self.work.description.update(lm_config=str(config))
        return CharLM(lm_config).to(self.device).eval()


def main() -> None:
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config, vocab, work = setup(args, device)
    torch.manual_seed(0)
    model = LAS(config).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    work.description.update(parameters=parameters, tiny=args.tiny)
    bf16 = device.type == "cuda" if args.bf16 is None else args.bf16
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": args.threads,
        "bf16": bf16,
        "torch": torch.__version__,
        "compile": args.compile,
    }
    measures = Measures(model, work, vocab, device, bf16, machine, args, peaks=[peak_memory_mib(device)])
    if args.compile:
        from asr.training.loop import compile_model  # here: asr.training needs tensorboard, the model alone does not

        compile_model(model)
    if "train" in args.measures:
        measures.train()
    if "greedy" in args.measures:
        measures.decode("greedy_decode", greedy_search, beam=1)
    if "beam10" in args.measures:
        measures.decode("beam10_decode", beam_search, beam=10)
    if "beam10_ctc" in args.measures:
        measures.decode("beam10_ctc_decode", beam_search, beam=10, ctc_weight=args.ctc_weight)
    if args.lm_config is not None:
        measures.decode("beam10_decode_lm", beam_search, beam=10, lm=measures.untrained_lm(args.lm_config))
    model_record = {"measure": "model", "parameters": parameters, "peak_memory_mib": max(measures.peaks), **machine}
    print(json.dumps({**model_record, "workload": work.description}))


if __name__ == "__main__":
    main()
