"""What every `asr` sub-command shares: argument types, the progress bar and the shallow-fusion options."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A progress bar on stderr (hidden when stderr is not a terminal and CI is set)."""
    return tqdm(items, total=total, desc=description, unit="utt", dynamic_ncols=True, disable=None)


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


positive_int = whole_number(1)
non_negative_int = whole_number(0)


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text}")
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


def add_search_options(parser: argparse.ArgumentParser) -> None:
    """--beam, --ctc-weight and --attention-window: the search of evaluation and transcription,
    each defaulting to the model's decoding section."""
    parser.add_argument("--beam", type=positive_int, help="beam size (default: the model's; 1 is greedy)")
    parser.add_argument("--ctc-weight", type=float, help="joint CTC weight (default: the model's)")
    parser.add_argument(
        "--attention-window",
        type=non_negative_int,
        help="listener frames the attention scores a step around its last peak, 0: all (default: the model's)",
    )


def add_lm_options(parser: argparse.ArgumentParser) -> None:
    """--lm, --lm-weight and --length-bonus (shallow fusion with a character LM), and --int8."""
    parser.add_argument("--lm", type=Path, help="character LM directory (asr lm train's EXP_DIR/model) to fuse")
    parser.add_argument("--lm-weight", type=float, help="weight of the LM's log-probabilities (default: the model's)")
    parser.add_argument(
        "--length-bonus", type=float, help="added to the score of every character, against an LM's short bias"
    )
    parser.add_argument("--int8", action="store_true", help="int8 weights (a CPU): faster, see README for the cost")
