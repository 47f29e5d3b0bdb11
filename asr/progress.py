"""How library code reports progress without printing: a `Track` wraps an iterable, and entry
points pass one that draws a progress bar (`asr.cli.progress`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
Track = Callable[[Iterable[T], int, str], Iterable[T]]
"""`track(items, total, description)` yields `items`; entry points pass a progress bar."""


def no_progress(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A `Track` that shows nothing."""
    return items
