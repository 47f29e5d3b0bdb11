"""What every `asr` sub-command shares: argument types, the progress bar and the shallow-fusion options."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A progress bar on stderr (hidden when stderr is not a terminal and CI is set)."""
    from tqdm import tqdm

    return tqdm(items, total=total, desc=description, unit="utt", dynamic_ncols=True, disable=None)


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum` (and at most `maximum`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


positive_int = whole_number(1)
non_negative_int = whole_number(0)
MAX_JOBS = 64
"""The most workers a --jobs may ask for: each is a thread or a process, and more than this
many only compete for the cores and the open files."""
worker_count = whole_number(1, MAX_JOBS)
worker_count_or_none = whole_number(0, MAX_JOBS)


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text}")
    return value


def pause_seconds(text: str) -> float:
    """An argparse type: seconds of a pause above 0, or inf (never)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds or inf, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0 seconds (or inf), got {text}")
    return value


def longest_piece(text: str) -> float:
    """An argparse type: seconds of the longest piece a recording is cut into, at least 1, or inf (no cut)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds or inf, got {text!r}") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 second (or inf), got {text}")
    return value


def default_jobs() -> int:
    return min(8, os.cpu_count() or 1)


def comma_names(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def comma_numbers(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated numbers."""
    try:
        return tuple(float(part) for part in comma_names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def search_flags() -> tuple[dataclasses.Field, ...]:
    """The fields of `SearchConfig` that are command-line flags: those with a `help` in their metadata."""
    from asr.decoding.config import SearchConfig

    return tuple(f for f in dataclasses.fields(SearchConfig) if "help" in f.metadata)


def add_search_options(parser: argparse.ArgumentParser) -> None:
    """A flag for each of `search_flags()` (`--beam`, `--ctc-weight`, ...): the search of evaluation
    and transcription, each defaulting to the model's decoding section."""
    for flag in search_flags():
        kind = {"int": int, "float": float}[flag.type]  # annotations are strings (from __future__ import annotations)
        minimum, maximum = flag.metadata.get("minimum"), flag.metadata.get("maximum")
        parse = whole_number(minimum, maximum) if kind is int and minimum is not None else kind
        name = f"--{flag.name.replace('_', '-')}"
        parser.add_argument(name, type=parse, help=f"{flag.metadata['help']} (default: the model's)")


def search_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The search flags' values (None: not given, the model's) by `SearchConfig` field name."""
    return {flag.name: getattr(args, flag.name) for flag in search_flags()}


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """--device: where a command computes."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")


def add_model_options(parser: argparse.ArgumentParser, *, lm: bool = True) -> None:
    """What a command that decodes with a trained model takes: --model, the search flags, --device,
    and (with `lm`) --lm (shallow fusion with a character LM; its weight is a search flag) and --int8."""
    parser.add_argument("--model", required=True, type=Path, help="model directory (asr train's EXP_DIR/model)")
    add_search_options(parser)
    add_device_option(parser)
    if lm:
        parser.add_argument("--lm", type=Path, help="character LM directory (asr lm train's EXP_DIR/model) to fuse")
        parser.add_argument("--int8", action="store_true", help="int8 weights (a CPU): faster, see README for the cost")
