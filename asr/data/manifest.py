"""Manifests: utterance records, JSONL reading and writing, speaker splits, the notes on what
normalisation drops from transcripts, length filters, and the check that every audio header reads.

A manifest is a JSONL file, one utterance a line:
`{"id": ..., "audio": ..., "duration": seconds, "text": ..., "speaker": ... (optional)}`,
with `audio` absolute or relative to the manifest's folder. An utterance that is a cut of
a longer recording (a Kaldi `segments` entry) also has `"start"` and `"end"` in seconds
into the file, and `duration` = end - start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from asr.atomic import atomic_open
from asr.errors import UserError
from asr.frontend.audio import AudioError, AudioInfo, audio_info, check_span, load_audio
from asr.outputs import one_of
from asr.text import ENGLISH, TextConfig, dropped_kind, listed_counts, normalize

log = logging.getLogger(__name__)


class ManifestError(UserError):
    """A manifest, transcript table or corpus folder that cannot be used."""


@dataclass(frozen=True)
class Utterance:
    """One manifest line: `audio` is an absolute path, `duration` in seconds. A cut of a longer
    recording starts `start` seconds into the file and ends at `end`; `end` None: the whole file."""

    id: str
    audio: Path
    duration: float
    text: str
    speaker: str | None = None
    start: float = 0.0
    end: float | None = None

    def to_json(self) -> str:
        record: dict[str, object] = {"id": self.id, "audio": str(self.audio), "duration": round(self.duration, 4)}
        record["text"] = self.text
        if self.speaker is not None:
            record["speaker"] = self.speaker
        if self.end is not None:
            record["start"], record["end"] = round(self.start, 4), round(self.end, 4)
        return json.dumps(record, ensure_ascii=False)

    def load(self) -> torch.Tensor:
        """The utterance's waveform (N,) at 16 kHz: the whole file, or its cut (`AudioError` for a cut
        past the recording's end, which would read as empty or short audio)."""
        if self.end is None:
            return load_audio(self.audio)[0]
        check_span(self.audio, audio_info(self.audio), self.start, self.end)
        return load_audio(self.audio, self.start, self.end - self.start)[0]


_FIELD_TYPES = {"id": str, "audio": str, "duration": (int, float), "text": str}


def _span(record: dict, where: str) -> tuple[float, float | None]:
    """(start, end) of a manifest line's cut, (0, None) for a whole file."""
    if "start" not in record and "end" not in record:
        return 0.0, None
    start, end = record.get("start"), record.get("end")
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (start, end))
    if not numbers or not 0 <= start < end:
        raise ManifestError(
            f"{where}: 'start' and 'end' must be seconds with 0 <= start < end, found {start!r}, {end!r}"
        )
    return float(start), float(end)


def _parse_line(line: str, where: str, folder: Path) -> Utterance:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{where}: invalid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected a JSON object, found {type(record).__name__}")
    for key, kind in _FIELD_TYPES.items():
        if key not in record:
            raise ManifestError(f"{where}: missing key '{key}'")
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise ManifestError(f"{where}: '{key}' has the wrong type ({type(record[key]).__name__}: {record[key]!r})")
    speaker = record.get("speaker")
    if speaker is not None and not isinstance(speaker, str | int):
        raise ManifestError(f"{where}: 'speaker' must be a string, found {speaker!r}")
    duration = float(record["duration"])
    if not math.isfinite(duration) or duration <= 0:
        raise ManifestError(f"{where}: 'duration' must be a positive number of seconds, found {record['duration']!r}")
    start, end = _span(record, where)
    return Utterance(
        id=record["id"],
        audio=(folder / record["audio"]).absolute(),
        duration=duration,
        text=record["text"],
        speaker=None if speaker is None else str(speaker),
        start=start,
        end=end,
    )


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a JSONL manifest; errors name the file, line and key. An empty manifest is an error."""
    path = Path(path)
    if not path.exists() or path.is_dir():  # a pipe (--manifest <(...)) reads as a file does
        raise ManifestError(f"{path}: {'is a folder, not a manifest' if path.is_dir() else 'no such file'}")
    utterances: list[Utterance] = []
    first_line: dict[str, int] = {}
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                utterance = _parse_line(line, f"{path}:{number}", path.parent)
                if utterance.id in first_line:
                    raise ManifestError(
                        f"{path}:{number}: id '{utterance.id}' already used on line {first_line[utterance.id]}"
                    )
                first_line[utterance.id] = number
                utterances.append(utterance)
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not a text file (invalid UTF-8)") from None
    if not utterances:
        raise ManifestError(f"{path}: empty manifest (no utterances)")
    return utterances


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write `utterances` as JSONL, atomically; never over audio they list (`ManifestError`)."""
    utterances = list(utterances)
    if one_of(Path(path), (u.audio for u in utterances)):
        raise ManifestError(f"{path}: is audio that the manifest lists; write the manifest to another file")
    with atomic_open(path) as handle:
        for utterance in utterances:
            handle.write(utterance.to_json() + "\n")


def split_by_speaker(
    utterances: Sequence[Utterance], fraction: float, seed: int = 0
) -> tuple[list[Utterance], list[Utterance]]:
    """(kept, held out): a seeded `fraction` of the speakers (at least one, never all) with all
    their utterances held out, e.g. for a dev set no training speaker is in.

    Raises `ManifestError` if an utterance has no speaker or there are fewer than two speakers.
    """
    if not 0 < fraction < 1:
        raise ManifestError(f"the held-out fraction must lie between 0 and 1, got {fraction}")
    missing = [u.id for u in utterances if u.speaker is None]
    if missing:
        raise ManifestError(f"utterance {missing[0]} (and {len(missing) - 1} more) has no speaker to split by")
    speakers = sorted({u.speaker for u in utterances if u.speaker is not None})
    if len(speakers) < 2:
        raise ManifestError(f"{len(speakers)} speaker: a speaker-disjoint split needs at least two")
    count = min(len(speakers) - 1, max(1, round(fraction * len(speakers))))
    held = set(random.Random(seed).sample(speakers, count))
    return [u for u in utterances if u.speaker not in held], [u for u in utterances if u.speaker in held]


def draw_across_speakers(utterances: Sequence[Utterance], count: int, seed: int = 0) -> list[Utterance]:
    """`count` of `utterances` (all of them when there are no more), taken one speaker at a time in
    turn: every speaker gives one before any gives two, speakers and each speaker's utterances in
    a seeded order; returned in manifest order. An utterance without a speaker counts as its own."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[int]] = {}
    for index, utterance in enumerate(utterances):
        by_speaker.setdefault(utterance.speaker or f"\0{utterance.id}", []).append(index)
    queues = [rng.sample(indices, len(indices)) for _, indices in sorted(by_speaker.items())]
    rng.shuffle(queues)
    chosen: list[int] = []
    while len(chosen) < min(count, len(utterances)):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return [utterances[i] for i in sorted(chosen)]


class Transcribed(Protocol):
    """Anything with an id and a transcript: an `Utterance`, a candidate of `asr.data.prepare`."""

    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...


KIND_NAMES = {"digits": "digits", "letters": "letters", "symbols": "symbols", "other": "other characters"}


def text_notes(items: Iterable[Transcribed], expand_option: str | None, text: TextConfig = ENGLISH) -> tuple[str, ...]:
    """One line per kind of character that `text`'s normaliser drops from these transcripts (digits,
    letters it cannot spell, symbols, other characters): how many transcripts hold it, the characters
    with their counts, and the first. `expand_option` names what spells digits as words (english);
    None: numbers were spelt already, and the digits left are glued to signs."""
    found: dict[str, list[tuple[Transcribed, str]]] = {}
    lost_characters: dict[str, Counter[str]] = {}
    for item in items:
        lost: dict[str, str] = {}
        for character in item.text:
            kind = dropped_kind(character, text)
            if kind is not None:
                lost.setdefault(kind, character)
                lost_characters.setdefault(kind, Counter())[character] += 1
        for kind, character in lost.items():
            found.setdefault(kind, []).append((item, character))
    notes = []
    for kind, hits in sorted(found.items()):
        first, character = hits[0]
        counted = listed_counts(dict(lost_characters[kind].most_common()))
        example = f"{counted}; e.g. {character!r} in {first.id}: {first.text[:60]!r}"
        if text.normalizer != "english":
            fix = "; text.digits=keep spells them" if kind == "digits" else ""
            notes.append(
                f"transcripts holding {KIND_NAMES[kind]}: {len(hits)} ({example}), which the "
                f"{text.normalizer} normaliser drops{fix}"
            )
        elif kind == "digits" and expand_option is None:
            notes.append(
                f"transcripts still holding digits: {len(hits)} ({example}); --expand-numbers leaves numbers "
                "glued to letters or signs (3D, 3:30, 1/2), normalize() drops them: write those as words by hand"
            )
        elif kind == "digits":
            notes.append(
                f"transcripts holding digits: {len(hits)} ({example}), which the character vocabulary cannot "
                f"spell; {expand_option} writes them as words"
            )
        else:
            what = "letters outside A-Z" if kind == "letters" else KIND_NAMES[kind]
            notes.append(f"transcripts holding {what}: {len(hits)} ({example}), which normalize() drops")
    return tuple(notes)


@dataclass(frozen=True)
class FilterConfig:
    """Which utterances training uses: durations in seconds, target length in characters."""

    min_duration: float = 0.0
    max_duration: float = math.inf
    max_target_length: int | None = None


def filter_utterances(
    utterances: Sequence[Utterance], config: FilterConfig, report: bool = True, text: TextConfig = ENGLISH
) -> list[Utterance]:
    """Keep utterances within the limits (target lengths as `text`'s normaliser writes them); log how
    many were dropped and why, and what that normaliser drops from the transcripts kept (`text_notes`),
    if `report` (one process of a distributed run reports for all)."""
    kept = []
    dropped: Counter[str] = Counter()
    for u in utterances:
        length = len(normalize(u.text, text))
        if length == 0:
            dropped["no character left once normalised (digits? asr prepare --expand-numbers spells them)"] += 1
        elif u.duration < config.min_duration:
            dropped[f"shorter than {config.min_duration} s"] += 1
        elif u.duration > config.max_duration:
            dropped[f"longer than {config.max_duration} s"] += 1
        elif config.max_target_length is not None and length > config.max_target_length:
            dropped[f"more than {config.max_target_length} characters"] += 1
        else:
            kept.append(u)
    for reason, count in sorted(dropped.items()) if report else ():
        log.warning("dropped %d of %d utterances: %s", count, len(utterances), reason)
    for note in text_notes(kept, "asr prepare --expand-numbers", text) if report else ():
        log.warning("training %s", note)
    return kept


DURATION_TOLERANCE = 0.1
"""Seconds a whole file's manifest `duration` may differ from its header's (rounding, a compressed
format's header estimate); beyond it the header's is taken."""


@dataclass(frozen=True)
class AudioCheck:
    """What reading every header of a manifest's utterances found.

    `utterances`: the same, a whole file's `duration` replaced by its header's where the manifest's
    was wrong (`corrected`: each such utterance as listed, with the seconds its audio holds);
    `unreadable`: the first utterance (in order) whose header cannot be read or whose cut lies past
    its recording's end (`audio.check_span`), with its error."""

    utterances: list[Utterance]
    corrected: list[tuple[Utterance, float]]
    unreadable: tuple[Utterance, AudioError] | None

    def summary(self, manifest: str | Path) -> str:
        """One line on the corrected durations (empty if none)."""
        if not self.corrected:
            return ""
        worst, heard = max(self.corrected, key=lambda pair: abs(pair[0].duration - pair[1]))
        return (
            f"{manifest}: {len(self.corrected)} of {len(self.utterances)} durations differ from their audio by more "
            f"than {DURATION_TOLERANCE} s and were taken from the audio instead (the most: {worst.id}, "
            f"{worst.duration:g} s listed, {heard:.2f} s heard)"
        )


def check_audio(utterances: Sequence[Utterance], threads: int = 8) -> AudioCheck:
    """Read the audio header of every utterance (each file once; `threads` at once): see `AudioCheck`."""
    files = list(dict.fromkeys(u.audio for u in utterances))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        infos = dict(zip(files, pool.map(_header, files), strict=True))
    checked, corrected = [], []
    for utterance in utterances:
        info = infos[utterance.audio]
        try:
            if isinstance(info, AudioError):
                raise info
            if utterance.end is not None:
                check_span(utterance.audio, info, utterance.start, utterance.end)
        except AudioError as error:
            return AudioCheck(checked, corrected, (utterance, error))
        if utterance.end is None and not abs(utterance.duration - info.duration) <= DURATION_TOLERANCE:
            corrected.append((utterance, info.duration))
            utterance = dataclasses.replace(utterance, duration=info.duration)
        checked.append(utterance)
    return AudioCheck(checked, corrected, None)


def _header(path: Path) -> AudioInfo | AudioError:
    try:
        return audio_info(path)
    except AudioError as error:
        return error
