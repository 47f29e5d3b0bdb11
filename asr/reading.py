"""Reading a small input file whole, with a bound: a config, a statistics file or a table given as
/dev/zero, or a 94 MB file by mistake, is one line, not a read until memory runs out."""

from __future__ import annotations

from pathlib import Path

from asr.errors import UserError

MAX_SMALL_FILE_BYTES = 16 << 20
"""The largest config, statistics file or speaker table read whole (16 MiB; a LibriSpeech run's
are a few kB)."""


class TooLargeError(UserError):
    """A file that should be small is not (or never ends)."""


def read_small_text(path: str | Path, what: str, limit: int = MAX_SMALL_FILE_BYTES) -> str:
    """The UTF-8 text of `path`, at most `limit` bytes; `TooLargeError` names the file and `what`
    it should have been. OSError and UnicodeDecodeError pass to the caller, which names them."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLargeError(f"{path}: more than {limit >> 20} MiB, which no {what} is")
    return data.decode("utf-8")
