"""Write files so that readers see the old content or the new, never half of it; one writer per folder."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from asr.errors import UserError


class FolderBusyError(UserError):
    """Another process holds the folder a command wants to write into."""


def default_mode(directory: bool = False) -> int:
    """The permissions a new file (or folder) gets under this process's umask, e.g. 0o644 (0o755)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it onto `path` only on success.

    An exception inside the block removes the temporary file and leaves `path`
    as it was. The rename is atomic on POSIX file systems.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the name cut short: a 250-byte name and the temporary file's additions would pass the 255-byte limit
    fd, tmp = tempfile.mkstemp(prefix=f".{os.fsdecode(os.fsencode(path.name)[:100])}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, default_mode())  # mkstemp makes 0600; an output file follows the umask like any other
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:  # a failed write names no file: name ours
            raise OSError(error.errno, error.strerror or str(error), str(path)) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace `path`'s content with `text` (UTF-8) atomically."""
    with atomic_open(path) as handle:
        handle.write(text)


@contextmanager
def exclusive_folder(folder: str | Path, command: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing) for the block's duration.

    A second process gets `FolderBusyError` naming the folder and the holder's pid. The
    lock is `flock` on `folder/.lock`: the system releases it when the holder exits,
    even after kill -9, so nothing stale is left behind.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / ".lock").open("a+", encoding="utf-8")
    locked = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise FolderBusyError(
                f"{folder}: another {command} (pid {holder}) is writing into this folder; "
                "wait for it to finish or use another folder"
            ) from None
        locked = True
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        if locked and created and [p.name for p in folder.iterdir()] == [".lock"]:
            # nothing was written (a config error, say): the folder this made goes, lock and all
            (folder / ".lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # something appeared meanwhile: it stays
                folder.rmdir()
        handle.close()  # closing releases the lock
