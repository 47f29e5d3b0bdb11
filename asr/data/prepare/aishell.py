"""AISHELL-1 (OpenSLR 33): ROOT/transcript/aishell_transcript_v0.8.txt and ROOT/wav/<split>/S####/*.wav.

The transcript holds one line an utterance of every split, `BAC009S0002W0122 而 对 楼市 成交 ...`:
the id, then the Mandarin text cut into words by spaces. The manifests keep the text as it is
(a model trained with `text.spaces: false` spells it without the spaces). The corpus has
recordings without a transcript line and lines without a recording: both are counted, not errors.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.data.manifest import ManifestError
from asr.data.prepare.common import Candidate, PrepareConfig, PrepareReport, Skips, read_text, write_prepared
from asr.progress import Track, no_progress
from asr.text import TextConfig

log = logging.getLogger(__name__)

TRANSCRIPT = Path("transcript") / "aishell_transcript_v0.8.txt"
SPLITS = ("train", "dev", "test")
TEXT = TextConfig("unicode", spaces=False)
"""The normaliser AISHELL is trained with (recipes/aishell/conf/train.yaml): characters, no spaces."""

_UTTERANCE_ID = re.compile(r"[A-Z]+\d+(S\d{4})W\d{4}")
"""BAC009S0002W0122: an utterance of speaker S0002, whose recordings lie in wav/<split>/S0002/."""


@dataclass(frozen=True)
class _Transcript:
    """The transcript file: id -> (line number, text), and each speaker's ids."""

    path: Path
    lines: dict[str, tuple[int, str]]
    by_speaker: dict[str, list[str]]


def find_aishell_folder(root: Path) -> Path:
    """`root` if it holds the transcript (it is `data_aishell`), else `root/data_aishell`."""
    if not root.is_dir():
        raise ManifestError(f"{root}: no such folder")
    places = [root, root / "data_aishell"]
    for place in places:
        if (place / TRANSCRIPT).is_file():
            return place
    raise ManifestError(f"{root}: no {TRANSCRIPT}; looked in {places[0]} and {places[1]} (data_aishell or its parent)")


def _split_folder(folder: Path, split: str) -> Path:
    """wav/<split>; where it is missing, say whether the speakers' archives are still packed."""
    place = folder / "wav" / split
    if place.is_dir():
        return place
    packed = list((folder / "wav").glob("*.tar.gz"))
    hint = f"; extract the {len(packed)} wav/*.tar.gz first (recipes/aishell/run.sh stage 1 does)" if packed else ""
    raise ManifestError(f"split '{split}' not found: no {place}{hint}")


def _read_transcript(path: Path) -> _Transcript:
    """Every `<id> <text>` line; lines without an AISHELL id, or that repeat one, are logged in one
    warning (they belong to no split to count them in)."""
    lines: dict[str, tuple[int, str]] = {}
    by_speaker: dict[str, list[str]] = defaultdict(list)
    unread = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        match = _UTTERANCE_ID.fullmatch(parts[0])
        if match is None or parts[0] in lines:
            unread.append(f"{number}: {line[:40]!r}")
            continue
        lines[parts[0]] = (number, parts[1].strip() if len(parts) == 2 else "")
        by_speaker[match.group(1)].append(parts[0])
    if unread:
        log.warning(
            "%s: %d lines skipped: not a new AISHELL id (BAC009S####W####) first, e.g. line %s",
            path,
            len(unread),
            unread[0],
        )
    return _Transcript(path, lines, dict(by_speaker))


def _warn_of_speakers_without_folder(folder: Path, transcript: _Transcript) -> None:
    """Log the transcript lines of speakers that no split of wav/ holds: no manifest counts them."""
    placed = {p.name for p in (folder / "wav").glob("*/S*") if p.is_dir()}
    unplaced = sorted(set(transcript.by_speaker) - placed)
    if unplaced:
        count = sum(len(transcript.by_speaker[s]) for s in unplaced)
        log.warning(
            "%s: %d lines skipped: %d speakers have no folder under %s (e.g. %s)",
            transcript.path,
            count,
            len(unplaced),
            folder / "wav",
            unplaced[0],
        )


def _aishell_candidates(split_dir: Path, transcript: _Transcript, skips: Skips) -> list[Candidate]:
    """Pair the recordings of each speaker folder of `split_dir` with their transcript lines."""
    candidates = []
    for speaker_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        speaker = speaker_dir.name
        recordings = {p.stem: p for p in speaker_dir.glob("*.wav")}
        for stem, audio in sorted(recordings.items()):
            if stem not in transcript.lines:
                skips.add("no transcript", f"{audio} is not in {transcript.path.name}")
                continue
            number, text = transcript.lines[stem]
            if not text:
                skips.add("empty text", f"{transcript.path}:{number}: {stem}")
                continue
            candidates.append(Candidate(stem, audio, text, speaker))
        for utterance in sorted(set(transcript.by_speaker.get(speaker, ())) - recordings.keys()):
            number = transcript.lines[utterance][0]
            skips.add("missing audio", f"{speaker_dir / utterance}.wav (listed in {transcript.path}:{number})")
    return candidates


def prepare_aishell(
    root: str | Path,
    splits: Sequence[str],
    out_dir: str | Path,
    config: PrepareConfig | None = None,
    track: Track = no_progress,
) -> list[PrepareReport]:
    """Write `out_dir/<split>.jsonl` for each split (train, dev, test) of AISHELL-1.

    `root` is `data_aishell` (holding `transcript/` and `wav/`) or its parent; the speakers'
    archives `wav/*.tar.gz` must be extracted first. The speaker is the recording's `S####`
    folder; the text is the transcript line as it is, spaces between words included.
    Recordings without a transcript line, lines without a recording and lines without text are
    counted, logged and skipped. `config` None: the defaults of `PrepareConfig` with `TEXT`.
    """
    config = config or PrepareConfig(text=TEXT)
    if not splits:
        raise ManifestError("no splits given (e.g. train,dev,test)")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ManifestError(f"unknown AISHELL split '{unknown[0]}'; the splits are {', '.join(SPLITS)}")
    folder = find_aishell_folder(Path(root).absolute())
    split_dirs = {split: _split_folder(folder, split) for split in splits}
    transcript = _read_transcript(folder / TRANSCRIPT)
    _warn_of_speakers_without_folder(folder, transcript)
    reports = []
    for split, split_dir in split_dirs.items():
        skips = Skips()
        candidates = _aishell_candidates(split_dir, transcript, skips)
        reports.append(write_prepared(split_dir, Path(out_dir) / f"{split}.jsonl", candidates, skips, config, track))
    return reports
