"""Data preparation: JSONL manifests from a LibriSpeech-layout tree or a TSV table.

Durations come from the audio headers, read in parallel. Items that cannot be used
(missing or unreadable audio, malformed transcript lines, audio without transcript)
are counted by reason, logged and skipped: never silently dropped.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from asr.audio import AudioError, AudioInfo, audio_info
from asr.data import ManifestError, Track, Utterance, no_progress, write_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareReport:
    """What preparing one manifest found: what it kept and what it skipped, by reason."""

    manifest: Path
    utterances: int
    seconds: float
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line, e.g. `dev-clean.jsonl: 2703 utterances, 5.39 h; skipped 2 (missing audio: 2)`."""
        hours = f"{self.seconds / 3600:.2f} h" if self.seconds >= 360 else f"{self.seconds:.1f} s"
        line = f"{self.manifest}: {self.utterances} utterances, {hours}"
        if self.skipped:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped.items()))
            line += f"; skipped {sum(self.skipped.values())} ({reasons})"
        return line


class _Skips:
    """Counts skipped items by reason and logs the first few of each."""

    shown_per_reason = 5

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        if self.counts[reason] <= self.shown_per_reason:
            log.warning("skipped (%s): %s", reason, detail)
        elif self.counts[reason] == self.shown_per_reason + 1:
            log.warning("skipped (%s): more like these follow; the summary counts them", reason)


@dataclass(frozen=True)
class _Candidate:
    id: str
    audio: Path
    text: str
    speaker: str | None


def _header_or_error(path: Path) -> AudioInfo | AudioError:
    try:
        return audio_info(path)
    except AudioError as error:
        return error


def _measure(candidates: list[_Candidate], skips: _Skips, jobs: int, track: Track, description: str) -> list[Utterance]:
    """Read every candidate's duration from its audio header, in parallel."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        infos = track(pool.map(_header_or_error, [c.audio for c in candidates]), len(candidates), description)
        utterances = []
        for candidate, info in zip(candidates, infos, strict=True):
            if isinstance(info, AudioError):
                skips.add("unreadable audio", str(info))
                continue
            utterances.append(
                Utterance(candidate.id, candidate.audio, info.duration, candidate.text, candidate.speaker)
            )
    return utterances


def _finish(out: Path, utterances: list[Utterance], skips: _Skips) -> PrepareReport:
    utterances.sort(key=lambda u: u.id)
    write_manifest(out, utterances)
    seconds = sum(u.duration for u in utterances)
    return PrepareReport(manifest=out, utterances=len(utterances), seconds=seconds, skipped=dict(skips.counts))


def _find_subset(root: Path, subset: str) -> Path:
    places = [root / subset, root / "LibriSpeech" / subset]
    for place in places:
        if place.is_dir():
            return place
    raise ManifestError(f"subset '{subset}' not found: looked in {places[0]} and {places[1]}")


def _librispeech_candidates(subset_dir: Path, skips: _Skips) -> list[_Candidate]:
    """Pair every transcript line of `subset_dir` with its flac file."""
    candidates = []
    for chapter_dir in sorted(p for p in subset_dir.glob("*/*") if p.is_dir()):
        speaker, chapter = chapter_dir.parent.name, chapter_dir.name
        transcript = chapter_dir / f"{speaker}-{chapter}.trans.txt"
        flacs = {p.stem for p in chapter_dir.glob("*.flac")}
        if not transcript.is_file():
            for stem in sorted(flacs):
                skips.add("no transcript", f"{chapter_dir / stem}.flac: {transcript.name} is missing")
            continue
        id_pattern = re.compile(rf"{re.escape(speaker)}-{re.escape(chapter)}-\d+")
        transcribed = set()
        for number, line in enumerate(transcript.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) < 2 or not id_pattern.fullmatch(parts[0]):
                skips.add("malformed transcript line", f"{transcript}:{number}: {line[:60]!r}")
                continue
            utterance_id, text = parts[0], parts[1].strip()
            transcribed.add(utterance_id)
            audio = chapter_dir / f"{utterance_id}.flac"
            if utterance_id not in flacs:
                skips.add("missing audio", f"{audio} (listed in {transcript}:{number})")
                continue
            candidates.append(_Candidate(utterance_id, audio.absolute(), text, speaker))
        for stem in sorted(flacs - transcribed):
            skips.add("no transcript", f"{chapter_dir / stem}.flac is not in {transcript.name}")
    return candidates


def prepare_librispeech(
    root: str | Path, subsets: Sequence[str], out_dir: str | Path, jobs: int = 8, track: Track = no_progress
) -> list[PrepareReport]:
    """Write `out_dir/<subset>.jsonl` for each subset of a LibriSpeech-layout tree.

    `root` holds `<subset>/<speaker>/<chapter>/` folders, or holds `LibriSpeech/` that
    does. Durations come from the flac headers. Missing audio, malformed transcript
    lines and untranscribed audio are counted, logged and skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: no such folder")
    if not subsets:
        raise ManifestError("no subsets given (e.g. dev-clean,test-clean)")
    subset_dirs = {subset: _find_subset(root, subset) for subset in subsets}
    reports = []
    for subset, subset_dir in subset_dirs.items():
        skips = _Skips()
        candidates = _librispeech_candidates(subset_dir, skips)
        utterances = _measure(candidates, skips, jobs, track, subset)
        reports.append(_finish(Path(out_dir) / f"{subset}.jsonl", utterances, skips))
    return reports


AUDIO_COLUMNS = ("audio", "path", "file")


def _tsv_candidates(path: Path, skips: _Skips) -> list[_Candidate]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
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
        audio = (path.parent / row[audio_column].strip()).absolute()
        if not row[text_column].strip():
            skips.add("empty text", f"{path}:{number}")
            continue
        if not audio.is_file():
            skips.add("missing audio", f"{path}:{number}: {audio}")
            continue
        utterance_id = row[id_column].strip() if id_column is not None else ""
        speaker = row[speaker_column].strip() if speaker_column is not None else None
        candidates.append(_Candidate(utterance_id, audio, row[text_column].strip(), speaker or None))
    return _with_ids(candidates, path)


def _with_ids(candidates: list[_Candidate], table: Path) -> list[_Candidate]:
    """Give rows without an id one: the file's stem, or its path below the table's folder if stems repeat."""
    stems = Counter(c.audio.stem for c in candidates)
    named = []
    for c in candidates:
        if c.id:
            named.append(c)
            continue
        if stems[c.audio.stem] == 1:
            new_id = c.audio.stem
        else:
            new_id = str(c.audio.relative_to(table.parent.absolute()).with_suffix("")).replace("/", "-")
        named.append(_Candidate(new_id, c.audio, c.text, c.speaker))
    seen = Counter(c.id for c in named)
    repeated = sorted(i for i, n in seen.items() if n > 1)
    if repeated:
        raise ManifestError(f"{table}: ids used more than once: {', '.join(repeated[:5])}")
    return named


def prepare_tsv(file: str | Path, out: str | Path, jobs: int = 8, track: Track = no_progress) -> PrepareReport:
    """Write a manifest from a tab-separated table with a header row.

    The header names an audio column (`audio`, `path` or `file`) and a `text` column;
    optional `id` and `speaker` columns are used, others ignored. Audio paths are
    relative to the table's folder.
    """
    path = Path(file)
    if not path.is_file():
        raise ManifestError(f"{path}: {'is a folder, not a table' if path.is_dir() else 'no such file'}")
    skips = _Skips()
    try:
        candidates = _tsv_candidates(path, skips)
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not a text file (invalid UTF-8)") from None
    utterances = _measure(candidates, skips, jobs, track, path.name)
    return _finish(Path(out), utterances, skips)
