"""Uploads: the request body read within a size limit, the audio saved in the server's private
temporary folder under a name of the server's choosing, and the client's file name as messages show it.

No name or path a client sends is ever opened: only its suffix (sanitised) is kept, for decoders
that go by it.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

MEGABYTE = 1_000_000
"""Bytes in a megabyte, as `--max-upload-mb` counts them."""

FORM_SLACK = 1 << 20
"""Bytes a multipart body may hold besides the file: boundaries, part headers, the other fields."""

_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


class UploadTooLarge(Exception):
    """A request body or an uploaded file larger than the server takes."""


def limited(receive: Receive, limit: int) -> Receive:
    """`receive` that raises `UploadTooLarge` once the request body passes `limit` bytes, before the
    rest of it is read (a body sent without Content-Length, or one that says less than it holds)."""
    total = 0

    async def receive_within_limit() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise UploadTooLarge(f"the request body passes {limit} bytes")
        return message

    return receive_within_limit


def private_folder() -> Path:
    """A new temporary folder that only this user can enter (mode 0700); the caller removes it."""
    return Path(tempfile.mkdtemp(prefix="asr-serve-"))


def safe_suffix(filename: str | None) -> str:
    """The suffix of a client's file name (".wav"), lower case, when it is a dot and 1-8 letters or
    digits; "" otherwise (no suffix, or one that could be anything)."""
    suffix = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
    return suffix if _SUFFIX.fullmatch(suffix) else ""


def shown_name(filename: str | None) -> str:
    """A client's file name as error messages show it: its last part, printable characters only,
    at most 100 of them; "file" when nothing is left."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    return "".join(character for character in name if character.isprintable())[:100] or "file"


def _copy(source: BinaryIO, target: int, limit: int) -> int:
    """Copy `source` into the open file descriptor `target` (closed after); its size in bytes.
    Raises `UploadTooLarge` past `limit` bytes."""
    size = 0
    with os.fdopen(target, "wb") as handle:
        source.seek(0)
        while chunk := source.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(f"the file passes {limit} bytes")
            handle.write(chunk)
    return size


async def save_upload(upload: UploadFile, folder: Path, limit: int) -> tuple[Path, int]:
    """Write `upload` into `folder` as a new file of the server's naming (mode 0600, the client's
    suffix if safe); its path and size in bytes. Raises `UploadTooLarge` past `limit` bytes, the
    partial file removed."""
    descriptor, name = tempfile.mkstemp(prefix="upload-", suffix=safe_suffix(upload.filename), dir=folder)
    path = Path(name)
    try:
        size = await asyncio.to_thread(_copy, upload.file, descriptor, limit)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size
