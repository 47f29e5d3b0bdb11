"""Synthesise a speech corpus in the LibriSpeech layout with espeak-ng, flite and festival.

    .venv/bin/python scripts/synthesize_corpus.py --out data/synth \\
        --train-utterances 3000 --dev-utterances 200 --test-utterances 300 --jobs 2

writes data/synth/{train,dev,test}/<speaker>/<chapter>/ and data/synth/SPEAKERS.TXT,
then checks every file. Re-running with the same settings resumes. Exit status: 0 on
success, 1 for a user error or when the check finds empty, clipped or silent files.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from asr.errors import UserError
from asr.synthesis.corpus import CheckConfig, CorpusConfig, check_corpus, synthesize_corpus
from asr.synthesis.engines import ENGINES, available_engines
from asr.synthesis.sentences import SOURCES

T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A progress bar on stderr."""
    return tqdm(items, total=total, desc=description, unit="chapter", dynamic_ncols=True, disable=None)


def names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    defaults = CorpusConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="corpus root folder")
    parser.add_argument("--train-utterances", type=int, default=defaults.train_utterances)
    parser.add_argument("--dev-utterances", type=int, default=defaults.dev_utterances)
    parser.add_argument("--test-utterances", type=int, default=defaults.test_utterances)
    parser.add_argument(
        "--chapter-utterances",
        type=int,
        default=defaults.chapter_utterances,
        help="utterances per chapter (one engine process per chapter for festival)",
    )
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated, from {','.join(ENGINES)}; or 'available' for the installed ones",
    )
    parser.add_argument("--texts", type=names, default=defaults.texts, help=f"from {','.join(SOURCES)}")
    parser.add_argument("--rates", type=numbers, default=defaults.rates, help="speed factors (default 0.85,1,1.15)")
    parser.add_argument("--pitches", type=numbers, default=defaults.pitches, help="semitones (default -2,0,2)")
    parser.add_argument(
        "--held-out-voice-fraction",
        type=float,
        default=defaults.held_out_voice_fraction,
        help="share of the talkers that dev, and test, each get (default %(default)s)",
    )
    parser.add_argument(
        "--noise-prob",
        type=float,
        default=defaults.noise_prob,
        help="probability of adding white/pink/brown noise to an utterance",
    )
    parser.add_argument("--snr", type=numbers, default=defaults.snr_db, help="SNR range in dB (default 5,30)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="parallel chapters")
    parser.add_argument("--check-only", action="store_true", help="only check the files already under --out")
    parser.add_argument("--verbose", action="store_true", help="log progress details")
    return parser


def run(args: argparse.Namespace) -> int:
    if not args.check_only:
        engines = tuple(available_engines()) if args.engines == "available" else names(args.engines)
        config = CorpusConfig(
            train_utterances=args.train_utterances,
            dev_utterances=args.dev_utterances,
            test_utterances=args.test_utterances,
            chapter_utterances=args.chapter_utterances,
            engines=engines,
            texts=args.texts,
            rates=args.rates,
            pitches=args.pitches,
            held_out_voice_fraction=args.held_out_voice_fraction,
            noise_prob=args.noise_prob,
            snr_db=args.snr,
            seed=args.seed,
        )
        report = synthesize_corpus(args.out, config, jobs=args.jobs, track=progress)
        print(f"{report.root}: synthesised {report.synthesized} utterances now")
        for subset in report.subsets:
            print(subset.summary())
    problems = check_corpus(args.out, CheckConfig(), jobs=args.jobs)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"synthesize_corpus: error: {len(problems)} broken files under {args.out}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="synthesize_corpus: %(levelname)s: %(message)s"
    )
    try:
        with logging_redirect_tqdm():
            return run(args)
    except UserError as error:
        print(f"synthesize_corpus: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("synthesize_corpus: interrupted; run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
