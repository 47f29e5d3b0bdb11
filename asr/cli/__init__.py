"""The `asr` command: argparse sub-commands over the library.

A user's mistake (a `UserError`) becomes one line on stderr and exit status 1;
usage errors exit with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from asr import __version__
from asr.cli.data import add_data_commands, add_synthesize
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

    try:
        with logging_redirect_tqdm():
            status = args.run(args)
    except UserError as error:
        print(f"asr: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130
    return status or 0
