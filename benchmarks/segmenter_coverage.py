"""How much quiet speech the voice-activity detector leaves out of a long recording of several talkers.

    .venv/bin/python benchmarks/segmenter_coverage.py --fsdd ../shared/data/fsdd [--minutes 10] [--quiet-db 26]

Builds, seeded, one recording of `--minutes` from the Free Spoken Digit Dataset (8 kHz, six
speakers): turns of one to four digits by one speaker, 0.2-0.5 s apart, turns 0.6-1.2 s apart
with noise at -70 dBFS between. Half the speakers are played `--quiet-db` below the other half,
as in a meeting where some sit far from the microphone. `asr.frontend.segmentation` cuts it at pauses
as `asr transcribe` does; a digit counts as covered when all its spoken frames (10 ms frames
within 20 dB of its loudest and 10 dB above the noise between turns) lie in a piece; a digit
without such a frame is inaudible and counted apart. Prints one JSON line: digits covered, loud and
quiet, and the seconds in no piece. Run it with PYTHONPATH set to another checkout to compare.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import soundfile
import torch

from asr.frontend.segmentation import SegmenterConfig, find_segments, frame_levels

RATE = 8000
FRAME = 80  # samples of a 10 ms frame at 8 kHz
NOISE_DBFS = -70.0
SPOKEN_WITHIN_DB = 20.0
AUDIBLE_DB = 10.0


def recordings(fsdd: Path) -> dict[str, list[Path]]:
    """Each speaker's recordings, from the dataset's transcripts.tsv."""
    speakers: dict[str, list[Path]] = {}
    with (fsdd / "transcripts.tsv").open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            speakers.setdefault(row["speaker"], []).append(fsdd / row["file"])
    return speakers


def spoken_frames(samples: np.ndarray) -> np.ndarray:
    """Indices of the 10 ms frames of one digit within `SPOKEN_WITHIN_DB` of its loudest frame and
    `AUDIBLE_DB` above the noise between turns (none: the digit is lost in the noise)."""
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return np.flatnonzero((level >= level.max() - SPOKEN_WITHIN_DB) & (level > NOISE_DBFS + AUDIBLE_DB))


def build(fsdd: Path, minutes: float, quiet_db: float, seed: int) -> tuple[np.ndarray, list[tuple[bool, np.ndarray]]]:
    """The recording (float32 at 8 kHz) and, per digit, (quiet?, the frame indices it is spoken in)."""
    rng = np.random.default_rng(seed)
    speakers = recordings(fsdd)
    names = sorted(speakers)
    quiet = set(names[1::2])
    parts: list[np.ndarray] = []
    digits: list[tuple[bool, np.ndarray]] = []
    at = 0  # samples so far, a multiple of FRAME

    def add(samples: np.ndarray) -> None:
        nonlocal at
        samples = samples[: len(samples) // FRAME * FRAME]
        parts.append(samples)
        at += len(samples)

    def noise(seconds: float) -> np.ndarray:
        return rng.normal(0, 10 ** (NOISE_DBFS / 20), round(seconds * RATE)).astype(np.float32)

    while at < minutes * 60 * RATE:
        speaker = names[rng.integers(len(names))]
        gain = 10 ** (-quiet_db / 20) if speaker in quiet else 1.0
        for turn_index in range(rng.integers(1, 5)):
            if turn_index:
                add(noise(rng.uniform(0.2, 0.5)))
            path = speakers[speaker][rng.integers(len(speakers[speaker]))]
            samples, rate = soundfile.read(path, dtype="float32")
            if rate != RATE:
                raise SystemExit(f"{path}: {rate} Hz, expected {RATE} Hz")
            samples = samples * np.float32(gain)
            digits.append((speaker in quiet, at // FRAME + spoken_frames(samples)))
            add(samples)
        add(noise(rng.uniform(0.6, 1.2)))
    return np.concatenate(parts), digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", type=Path, required=True, help="the Free Spoken Digit Dataset's folder")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quiet-db", type=float, default=26.0, help="how far below the others half the speakers are")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    audio, digits = build(args.fsdd, args.minutes, args.quiet_db, args.seed)
    pieces = find_segments(frame_levels([(torch.from_numpy(audio), RATE)]), SegmenterConfig())
    in_piece = np.zeros(len(audio) // FRAME, bool)
    for start, end in pieces:
        in_piece[round(start * 100) : round(end * 100)] = True
    audible = [(is_quiet, frames) for is_quiet, frames in digits if len(frames)]
    covered = [(is_quiet, bool(in_piece[frames].all())) for is_quiet, frames in audible]
    result = {
        "workload": f"{args.minutes:g} min of FSDD digits, half the talkers {args.quiet_db:g} dB down",
        "seed": args.seed,
        "pieces": len(pieces),
        "loud_digits": sum(not q for q, _ in covered),
        "loud_digits_missed": sum(not q and not c for q, c in covered),
        "quiet_digits": sum(q for q, _ in covered),
        "quiet_digits_missed": sum(q and not c for q, c in covered),
        "inaudible_digits": len(digits) - len(audible),
        "seconds": round(len(audio) / RATE, 1),
        "seconds_in_no_piece": round(float((~in_piece).sum()) / 100, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
