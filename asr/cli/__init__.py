"""The `asr` command: argparse sub-commands over the library.

A user's mistake (a `UserError`) becomes one line on stderr and exit status 1;
usage errors exit with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from asr import __version__
from asr.cli.data import add_data_commands, add_synthesize
from asr.cli.serve import add_serve
from asr.cli.training import add_lm, add_training_commands
from asr.cli.transcribe import add_align, add_transcribe
from asr.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Listen, Attend and Spell speech recognition: prepare data, train, evaluate, transcribe.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add_data_commands(commands)
    add_training_commands(commands)
    add_synthesize(commands)
    add_transcribe(commands)
    add_align(commands)
    add_lm(commands)
    add_serve(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print as their own bytes, as ls does
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="asr: %(levelname)s: %(message)s"
    )
    from tqdm.contrib.logging import logging_redirect_tqdm  # here: a parser error or --help needs no tqdm

    if sys.stdout is None:  # started with stdout closed (>&-): what the command prints would be lost
        print("asr: error: stdout is closed; redirect it to a file (or /dev/null)", file=sys.stderr)
        return 1
    stdout = sys.stdout = _WatchedStream(sys.stdout)
    try:
        with logging_redirect_tqdm():
            status = args.run(args)
        sys.stdout.flush()  # a full device (> /dev/full) answers here, not in the interpreter's exit
    except UserError as error:
        print(f"asr: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        if error is stdout.failed:
            _drop_stdout(stdout)
            if isinstance(error, BrokenPipeError):  # the reader went away (| head): stop quietly, as tools do
                return 128 + signal.SIGPIPE
            print(f"asr: error: stdout: {(error.strerror or str(error)).lower()}", file=sys.stderr)
            return 1
        if error.filename is not None and error.errno in NO_ROOM:  # a full disk is no bug: one line, no traceback
            problem = (error.strerror or str(error)).lower()
            print(f"asr: error: {error.filename}: {problem}; make room and run the command again", file=sys.stderr)
            return 1
        raise
    finally:
        if sys.stdout is stdout:
            sys.stdout = stdout.stream
    return status or 0


NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""A full disk, a quota, a file size limit (ulimit -f): the write failed for want of room."""


class _WatchedStream:
    """stdout as the command sees it, remembering the error a write or flush raised: an OSError of
    unknown origin is the output's only when it came from here."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as error:
            self.failed = error
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as error:
            self.failed = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _drop_stdout(stdout: _WatchedStream) -> None:
    """Point stdout at /dev/null: what is left in its buffer goes nowhere, and the interpreter's exit
    does not fail on it again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # not a file (a test's capture): nothing to drop
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.stream.fileno())
