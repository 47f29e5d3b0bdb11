"""Training throughput with the optimizer and the data loader in the loop, and the loader alone, on a
LibriSpeech-shaped corpus made on the spot; prints one JSON line per measurement.

    .venv/bin/python benchmarks/train_throughput.py [--device cuda] [--config CONFIG] [--utterances 600]
        [--steps 20] [--warmups 5] [--workers 8] [--loader-only] [--tiny] [--set KEY=VALUE]

The corpus: `--utterances` recordings with durations drawn (seeded) as benchmarks/model_speed.py's
librispeech workload draws them (mean 12.7 s), each a stretch of the committed LibriSpeech fixture's
speech repeated to its length, written as 16-bit FLAC as LibriSpeech is, with a random transcript
of 15 characters a second; normalisation statistics from 20 of them.

`train` (the default): `asr train`'s Trainer with the config (`--set` overrides; `max_frames`,
`num_workers`, speed perturbation and SpecAugment as the config says, `--workers` for the
loader) for `--warmups` + `--steps` optimizer steps; reported over the last `--steps`: seconds a
step (optimizer step, loader and logging included), utterances and seconds of audio a second, the
share of the time spent waiting for the loader, the peak GPU memory, and the hours an epoch of
train-clean-100 and of the 960 h would take at that rate. On a GPU it is bf16 as the config's
precision "auto" says.

`--loader-only`: the DataLoader alone (audio decoding, speed perturbation, waveform augmentation
and padding, as the config asks; features are computed on the training device, not here) with
`--workers` processes: utterances and seconds of audio a second, per worker.

CONFIG defaults to recipes/librispeech/conf/train_clean_100.yaml. `--tiny`: a tiny model, a
tenth of the corpus and short steps, to check that the script runs: its
figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import soundfile
import torch

from asr.config import load_config
from asr.data.manifest import Utterance, write_manifest
from asr.frontend.audio import SAMPLE_RATE, load_audio
from asr.frontend.features import FeatureConfig
from asr.frontend.normalization import compute_stats
from asr.text import Vocabulary
from asr.training.config import TrainConfig
from asr.training.loop import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_speed import DURATION_MEAN, DURATION_SD, LONGEST, SHORTEST  # noqa: E402 (a sibling script)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "LibriSpeech"
CONFIG = ROOT / "recipes" / "librispeech" / "conf" / "train_clean_100.yaml"
CORPORA = {"train-clean-100": 100.6, "960 h": 960.9}
"""Hours of audio of each training set, for the epoch estimates."""
CHARACTERS_PER_SECOND = 15.0
TINY = [
    "model.listener.layers=3", "model.listener.units=32", "model.attention.dim=32", "model.speller.units=32",
    "model.speller.embedding_dim=16", "data.max_frames=4000",
]  # fmt: skip


def make_corpus(folder: Path, utterances: int, features: FeatureConfig, seed: int = 0) -> tuple[Path, Path]:
    """Write the corpus (see the module's docstring) into `folder`; its manifest and statistics
    (computed with the training config's `features`, which it checks them against)."""
    generator = torch.Generator().manual_seed(seed)
    speech = torch.cat([load_audio(path)[0] for path in sorted(FIXTURE.rglob("*.flac"))])  # (N,) at 16 kHz
    durations = torch.randn(utterances, generator=generator, dtype=torch.float64) * DURATION_SD + DURATION_MEAN
    vocab = Vocabulary.default()
    letters = [token for token in vocab.tokens if len(token) == 1 and token.isalpha()]
    records = []
    for i, duration in enumerate(durations.clamp(SHORTEST, LONGEST).tolist()):
        samples = round(duration * SAMPLE_RATE)
        start = int(torch.randint(speech.shape[0], (), generator=generator))
        audio = speech.roll(-start).repeat(samples // speech.shape[0] + 1)[:samples]
        path = folder / f"{i:05d}.flac"
        soundfile.write(path, audio.numpy(), SAMPLE_RATE, subtype="PCM_16")
        picks = torch.randint(len(letters) + 3, (round(duration * CHARACTERS_PER_SECOND),), generator=generator)
        text = "".join(letters[p] if p < len(letters) else " " for p in picks.tolist()).strip() or letters[0]
        records.append(Utterance(f"u{i:05d}", path.resolve(), duration, " ".join(text.split())))
    manifest = folder / "train.jsonl"
    write_manifest(manifest, records)
    stats = folder / "cmvn.json"
    compute_stats((load_audio(u.audio)[0] for u in records[:20]), features).save(stats)
    return manifest, stats


class TimedLoader:
    """A DataLoader whose batches are counted and whose waits for the next batch are timed."""

    def __init__(self, loader: torch.utils.data.DataLoader, waits: list[float]) -> None:
        self.loader, self.waits = loader, waits

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        while True:
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - started)
            yield batch


def machine(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"device": name, "torch": torch.__version__, "threads": torch.get_num_threads()}


def train(args: argparse.Namespace, config: TrainConfig, corpus: dict[str, Any]) -> dict[str, Any]:
    """Time the last `args.steps` optimizer steps of a run of `warmups + steps`."""
    with tempfile.TemporaryDirectory(prefix="throughput_exp_") as exp:
        trainer = Trainer(config, Path(exp), device=args.device)
        device = trainer.device
        waits: list[float] = []
        ends: list[float] = []
        utterances: list[int] = []
        audio: list[float] = []
        loader, step = trainer._loader, trainer._train_step
        trainer._loader = lambda: TimedLoader(loader(), waits)

        def timed_step(batches: list[Any]) -> dict[str, float] | None:
            figures = step(batches)
            ends.append(time.perf_counter())
            utterances.append(sum(len(batch.ids) for batch in batches))
            audio.append(sum(float(batch.waveform_lengths.sum()) for batch in batches) / SAMPLE_RATE)
            return figures

        trainer._train_step = timed_step
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        trainer.run()
    timed = slice(args.warmups + 1, None)  # step i's period: from the end of step i-1 to its own end
    periods = [b - a for a, b in zip(ends, ends[1:], strict=False)][args.warmups :]
    seconds = sum(periods)
    rate = sum(audio[timed]) / seconds  # seconds of audio a second
    record = {
        "measure": "train_throughput",
        "steps": len(periods),
        "seconds_per_step": round(statistics.median(periods), 4),
        "utterances_per_second": round(sum(utterances[timed]) / seconds, 2),
        "audio_seconds_per_second": round(rate, 1),
        "loader_wait_share": round(sum(waits[args.warmups + 1 : len(ends)]) / seconds, 3),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None,
        "hours_per_epoch": {name: round(hours / rate, 2) for name, hours in CORPORA.items()},
        "workers": config.data.num_workers,
    }
    return record | machine(device) | {"workload": corpus}


def loader_only(args: argparse.Namespace, config: TrainConfig, corpus: dict[str, Any]) -> dict[str, Any]:
    """Iterate the training loader of the config for at most `warmups + steps` batches."""
    with tempfile.TemporaryDirectory(prefix="throughput_exp_") as exp:
        trainer = Trainer(config, Path(exp), device="cpu")
        batches = iter(trainer._loader())
        for _ in range(args.warmups):
            next(batches, None)
        started, utterances, audio, timed = time.perf_counter(), 0, 0.0, 0
        for _ in range(args.steps):
            batch = next(batches, None)
            if batch is None:
                break
            utterances += len(batch.ids)
            audio += float(batch.waveform_lengths.sum()) / SAMPLE_RATE
            timed += 1
        seconds = time.perf_counter() - started
    if timed == 0:
        raise SystemExit(
            f"train_throughput.py: the corpus's {args.utterances} utterances leave no batch to time after "
            f"--warmups {args.warmups}; give more --utterances or fewer --warmups"
        )
    workers = max(1, config.data.num_workers)
    return (
        {
            "measure": "loader_throughput",
            "workers": config.data.num_workers,
            "batches": timed,
            "utterances_per_second": round(utterances / seconds, 2),
            "utterances_per_second_per_worker": round(utterances / seconds / workers, 2),
            "audio_seconds_per_second": round(audio / seconds, 1),
            "speed_perturb": config.data.speed_perturb,
        }
        | machine(torch.device("cpu"))
        | {"workload": corpus}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", type=Path, default=CONFIG, help="a training config (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--utterances", type=int, default=600, help="recordings in the corpus")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps (loader: batches)")
    parser.add_argument("--warmups", type=int, default=5, help="untimed steps (batches) first")
    parser.add_argument("--workers", type=int, help="loader processes (default: the config's data.num_workers)")
    parser.add_argument("--threads", type=int, help="torch threads of the main process (default: torch's)")
    parser.add_argument("--loader-only", action="store_true", help="time the data loader alone")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and corpus (script check)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    utterances = max(40, args.utterances // 10) if args.tiny else args.utterances
    with tempfile.TemporaryDirectory(prefix="throughput_corpus_") as folder:
        started = time.perf_counter()
        features = load_config(TrainConfig, args.config, args.set).features
        manifest, stats = make_corpus(Path(folder), utterances, features)
        corpus = {"name": "librispeech-shaped", "utterances": utterances, "config": str(args.config)}
        corpus.update(overrides=args.set, made_in_seconds=round(time.perf_counter() - started, 1), tiny=args.tiny)
        overrides = [f"data.train={manifest}", f"data.dev={manifest}", f"data.stats={stats}", "data.dev_utterances=8"]
        overrides += [f"max_steps={args.warmups + args.steps}", "epochs=1000", "validate_every=null"]
        overrides += ["checkpoint_every=100000", "plot_utterances=0", "log_every=100000"]
        if args.workers is not None:
            overrides.append(f"data.num_workers={args.workers}")
        config = load_config(TrainConfig, args.config, overrides + (TINY if args.tiny else []) + args.set)
        measure = loader_only if args.loader_only else train
        print(json.dumps(measure(args, config, corpus)), flush=True)


if __name__ == "__main__":
    main()
