"""A tab-separated table with a header naming an audio column (audio, path or file) and a text column."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

from asr.data.manifest import ManifestError
from asr.data.prepare.common import Candidate, PrepareConfig, PrepareReport, Skips, read_text, write_prepared
from asr.progress import Track, no_progress

AUDIO_COLUMNS = ("audio", "path", "file")

_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe_id(text: str) -> str:
    """`text` with each run of characters other than A-Za-z0-9_.- made one '_', and no leading '.' or '-'."""
    return _UNSAFE_ID_CHARACTERS.sub("_", text).lstrip(".-") or "_"


def _path_id(audio: Path, folder: Path) -> str:
    """An id for one of several files that share a stem.

    Inside `folder`: the path below it without the suffix, '/' made '-' (`clips/a.flac`
    -> `clips-a`). Elsewhere: the stem and 8 hex digits of the path's hash (`a-1f3e9c0b`).
    """
    if audio.is_relative_to(folder):
        return _safe_id("-".join(audio.relative_to(folder).with_suffix("").parts))
    return _safe_id(f"{audio.stem}-{hashlib.sha1(str(audio).encode()).hexdigest()[:8]}")


def _with_ids(candidates: list[Candidate], table: Path) -> list[Candidate]:
    """Give rows without an id one: the file's stem, or `_path_id` when stems repeat."""
    folder = Path(os.path.normpath(table.parent.absolute()))
    stems = Counter(c.audio.stem for c in candidates)
    named = []
    for c in candidates:
        if c.id:
            named.append(c)
        else:
            new_id = _safe_id(c.audio.stem) if stems[c.audio.stem] == 1 else _path_id(c.audio, folder)
            named.append(replace(c, id=new_id))
    seen = Counter(c.id for c in named)
    repeated = sorted(i for i, n in seen.items() if n > 1)
    if repeated:
        raise ManifestError(f"{table}: ids used more than once: {', '.join(repeated[:5])}")
    return named


def _tsv_candidates(path: Path, skips: Skips) -> list[Candidate]:
    rows = list(csv.reader(io.StringIO(read_text(path), newline=""), delimiter="\t"))
    if not rows:
        raise ManifestError(f"{path}: empty file; expected a header row naming an audio column and a text column")
    header = [name.strip().lower() for name in rows[0]]
    audio_column = next((header.index(name) for name in AUDIO_COLUMNS if name in header), None)
    if audio_column is None:
        raise ManifestError(
            f"{path}: no audio column; the header needs one of {', '.join(AUDIO_COLUMNS)}, found: {', '.join(header)}"
        )
    if "text" not in header:
        raise ManifestError(f"{path}: no 'text' column in the header, found: {', '.join(header)}")
    if not any(cell.strip() for row in rows[1:] for cell in row):
        raise ManifestError(f"{path}:1: a header row and nothing below it; add one row per utterance")
    text_column = header.index("text")
    id_column = header.index("id") if "id" in header else None
    speaker_column = header.index("speaker") if "speaker" in header else None
    candidates = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            skips.add("malformed row", f"{path}:{number}: {len(row)} fields, the header has {len(header)}")
            continue
        audio = Path(os.path.normpath((path.parent / row[audio_column].strip()).absolute()))
        if not row[text_column].strip():
            skips.add("empty text", f"{path}:{number}")
            continue
        if not audio.is_file():
            skips.add("missing audio", f"{path}:{number}: {audio}")
            continue
        utterance_id = row[id_column].strip() if id_column is not None else ""
        speaker = row[speaker_column].strip() if speaker_column is not None else None
        candidates.append(Candidate(utterance_id, audio, row[text_column].strip(), speaker or None))
    return _with_ids(candidates, path)


def prepare_tsv(
    file: str | Path, out: str | Path, config: PrepareConfig | None = None, track: Track = no_progress
) -> PrepareReport:
    """Write a manifest from a tab-separated table with a header row.

    The header names an audio column (`audio`, `path` or `file`) and a `text` column;
    optional `id` and `speaker` columns are used, others ignored. Audio paths are
    relative to the table's folder. Rows without an id get the file's stem, made of
    A-Z, a-z, 0-9, '_', '.' and '-' only; files that share a stem get their path below
    the table's folder (`clips-a`), or, outside it, the stem and a hash of the path.
    """
    config = config or PrepareConfig()
    path = Path(file)
    if not path.is_file():
        raise ManifestError(f"{path}: {'is a folder, not a table' if path.is_dir() else 'no such file'}")
    skips = Skips()
    candidates = _tsv_candidates(path, skips)
    return write_prepared(path, Path(out), candidates, skips, config, track)
