"""What every importer shares: settings, the report, skip counting, transcript checks, reading the audio."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from asr.data.manifest import ManifestError, Utterance, text_notes, write_manifest
from asr.frontend.audio import AudioError, AudioInfo, audio_blocks, audio_info, check_span
from asr.progress import Track
from asr.text import ENGLISH, TextConfig, normalize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareConfig:
    """How an importer reads audio and transcripts.

    `jobs` files are read at once. Without `verify` only the audio headers are read;
    with it every file is also decoded once, which finds what a header cannot show (a
    cut-off FLAC whose header is intact). `expand_numbers` writes digits as words
    ("42" -> "forty-two", "$5" -> "five dollars") before anything else looks at the text
    (English). `text`: the normaliser the corpus will be trained with, which decides what
    the notes count as lost and which transcripts are empty; the manifest keeps the text as
    it was.
    """

    jobs: int = 8
    verify: bool = False
    expand_numbers: bool = False
    text: TextConfig = ENGLISH

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {self.jobs}")


def _skipped_text(skipped: Mapping[str, int]) -> str:
    """`skipped 5 (missing audio: 2, no transcript: 3)`."""
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items()))
    return f"skipped {sum(skipped.values())} ({reasons})"


@dataclass(frozen=True)
class PrepareReport:
    """What preparing one manifest found: what it kept and what it skipped, by reason.

    `notes` are one line per kind of transcript text that `normalize()` loses, with
    counts, e.g. `transcripts holding digits: 3 (e.g. ...)`.
    """

    manifest: Path
    utterances: int
    seconds: float
    skipped: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line, e.g. `dev-clean.jsonl: 2703 utterances, 5.39 h; skipped 2 (missing audio: 2)`."""
        hours = f"{self.seconds / 3600:.2f} h" if self.seconds >= 360 else f"{self.seconds:.1f} s"
        line = f"{self.manifest}: {self.utterances} utterances, {hours}"
        if self.skipped:
            line += f"; {_skipped_text(self.skipped)}"
        return line


class Skips:
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
class Candidate:
    """An utterance before its audio is read: the whole of `audio`, or from `start` to `end` seconds.

    `start` is None for a whole file; `end` None with a `start` runs to the recording's end.
    """

    id: str
    audio: Path
    text: str
    speaker: str | None
    start: float | None = None
    end: float | None = None


def read_text(path: Path) -> str:
    """The UTF-8 text of `path` (a byte-order mark is dropped); a one-line `ManifestError` if it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{path}: {(error.strerror or str(error)).lower()}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line}: not a text file (invalid UTF-8)") from None


def _spellable(
    candidates: list[Candidate], skips: Skips, expand_numbers: bool, text: TextConfig
) -> tuple[list[Candidate], tuple[str, ...]]:
    """Expand numbers if asked; count what `text`'s normaliser loses; skip transcripts it empties."""
    if expand_numbers:
        from asr.text import spell_numbers  # here: num2words only when asked for, not with the CLI

        candidates = [replace(c, text=spell_numbers(c.text)) for c in candidates]
    notes = text_notes(candidates, None if expand_numbers else "--expand-numbers", text)
    kept = []
    for candidate in candidates:
        if not normalize(candidate.text, text):
            skips.add("text empty once normalised", f"{candidate.id}: {candidate.text[:60]!r}")
            continue
        kept.append(candidate)
    return kept, notes


@dataclass(frozen=True)
class _Unusable:
    """Why an audio file cannot be used: a skip reason and the error that names the file."""

    reason: str
    error: AudioError


def _inspect(path: Path, verify: bool) -> AudioInfo | _Unusable:
    """The header of `path`; with `verify`, only if the whole file decodes too."""
    try:
        info = audio_info(path)
    except AudioError as error:
        return _Unusable("unreadable audio", error)
    if verify:
        try:
            for _ in audio_blocks(path):
                pass
        except AudioError as error:
            return _Unusable("undecodable audio", error)
    return info


MIN_SECONDS = 0.1
"""Shorter utterances (a segment of near-zero length, a click) hold no word to learn or score; they are skipped.
The shortest spoken digit of FSDD lasts 0.14 s."""


def _utterances(
    candidates: list[Candidate], skips: Skips, config: PrepareConfig, track: Track, description: str
) -> list[Utterance]:
    """Read each audio file once, in parallel; pair every candidate with its file's duration."""
    files = list(dict.fromkeys(c.audio for c in candidates))
    with ThreadPoolExecutor(max_workers=config.jobs) as pool:
        results = pool.map(lambda path: _inspect(path, config.verify), files)
        infos = dict(zip(files, track(results, len(files), description), strict=True))
    utterances = []
    for c in candidates:
        info = infos[c.audio]
        if isinstance(info, _Unusable):
            skips.add(info.reason, str(info.error))
            continue
        if c.start is None:
            utterance = Utterance(c.id, c.audio, info.duration, c.text, c.speaker)
        else:
            end = info.duration if c.end is None else c.end
            try:
                check_span(c.audio, info, c.start, end)
            except AudioError as error:
                skips.add("segment past the recording's end", f"{c.id}: {error}")
                continue
            end = min(end, info.duration)
            utterance = Utterance(c.id, c.audio, end - c.start, c.text, c.speaker, c.start, end)
        if utterance.duration < MIN_SECONDS:
            skips.add(f"shorter than {MIN_SECONDS:g} s", f"{c.id}: {utterance.duration:.3f} s of {c.audio}")
            continue
        utterances.append(utterance)
    return utterances


def write_prepared(
    source: Path, out: Path, candidates: list[Candidate], skips: Skips, config: PrepareConfig, track: Track
) -> PrepareReport:
    """Check the texts, read the audio, write `out` sorted by id; refuse to write an empty manifest."""
    candidates, notes = _spellable(candidates, skips, config.expand_numbers, config.text)
    utterances = _utterances(candidates, skips, config, track, source.name)
    if not utterances:
        skipped = f" ({_skipped_text(skips.counts)})" if skips.counts else ""
        raise ManifestError(f"{source}: no usable utterances{skipped}; {out} not written")
    utterances.sort(key=lambda u: u.id)
    write_manifest(out, utterances)
    seconds = sum(u.duration for u in utterances)
    return PrepareReport(out, len(utterances), seconds, dict(skips.counts), notes)
