"""Checks of the paths a command is told to write, made at the command line before any work.

Each problem is one `OutputError` line that names the path, the option and what is wrong:
a folder where a file is wanted (or the other way round), an output that is one of the
command's inputs, two outputs that are the same file, a place that cannot be written.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from asr.errors import UserError


class OutputError(UserError):
    """An output path that cannot be written, or must not be: it would overwrite an input."""


_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_file_name(text: str, limit: int = 100) -> str:
    """`text` (an utterance id ...) as a file name that stays in its folder: each run of characters other
    than A-Za-z0-9_.- made one '_', no leading '.' or '-', at most `limit` characters. When that changes
    `text`, '-' and 8 hex digits of its hash end the name, so that different texts keep different names."""
    name = _UNSAFE_NAME_CHARACTERS.sub("_", text).lstrip(".-")
    if name == text and len(name) <= limit:
        return name
    digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name one file: the same inode when both exist, else the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def one_of(path: Path, files: Iterable[Path]) -> bool:
    """Whether `path` is one of `files` (the same file, through links too): what a command read
    and must not overwrite, e.g. the audio a manifest lists. A path that does not exist is none of
    them. Each file is looked at once (a LibriSpeech manifest's 281,241: well under a second)."""
    try:
        target = os.stat(path)
    except OSError:
        return False
    for file in files:
        try:
            info = os.stat(file)
        except OSError:
            continue
        if info.st_ino == target.st_ino and info.st_dev == target.st_dev:
            return True
    return False


def _nearest_existing(path: Path) -> Path:
    """`path` if it exists, else the nearest of the folders above it that does."""
    path = path.absolute()
    return next(p for p in (path, *path.parents) if os.path.lexists(p))


def _check_writable(path: Path, folder: Path) -> None:
    """Whether `path` can be made in `folder` (created with its parents if missing): makes and removes
    a folder where the first new one would go, a test that root, read-only file systems and /proc
    all answer truthfully, as `os.access` does not."""
    place = _nearest_existing(folder)
    if not place.is_dir():
        raise OutputError(f"{path}: {place} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".asr-write-check.", dir=place))
    except OSError as error:
        raise OutputError(f"{path}: cannot be written ({place}: {(error.strerror or str(error)).lower()})") from None


def output_files(outputs: Mapping[str, Path], inputs: Sequence[Path] = ()) -> None:
    """Check files a command will write, given as option -> path: none is a folder, an input
    or another's path, and each can be created. An existing file is fine: it is replaced."""
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; give {option} a file name")
        for source in inputs:
            if same_file(path, source):
                raise OutputError(f"{path}: is an input of this command; give {option} another file")
        for other, other_option in seen.items():
            if same_file(path, other):
                raise OutputError(f"{path}: given to both {other_option} and {option}; give each its own file")
        seen[path] = option
        _check_writable(path, path.parent)


def output_file(path: Path, option: str, inputs: Sequence[Path] = ()) -> None:
    """`output_files` for one file."""
    output_files({option: path}, inputs)


def output_folder(path: Path, option: str) -> None:
    """Check a folder a command will write into (and create if missing): not a file, writable."""
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a folder; give {option} a folder")
    _check_writable(path, path)
