"""A LibriSpeech-layout tree: ROOT/<subset>/<speaker>/<chapter>/*.flac with <speaker>-<chapter>.trans.txt."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from asr.data.manifest import ManifestError
from asr.data.prepare.common import Candidate, PrepareConfig, PrepareReport, Skips, read_text, write_prepared
from asr.progress import Track, no_progress


def _find_subset(root: Path, subset: str) -> Path:
    places = [root / subset, root / "LibriSpeech" / subset]
    for place in places:
        if place.is_dir():
            return place
    raise ManifestError(f"subset '{subset}' not found: looked in {places[0]} and {places[1]}")


def _librispeech_candidates(subset_dir: Path, skips: Skips) -> list[Candidate]:
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
        for number, line in enumerate(read_text(transcript).splitlines(), 1):
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
            candidates.append(Candidate(utterance_id, audio.absolute(), text, speaker))
        for stem in sorted(flacs - transcribed):
            skips.add("no transcript", f"{chapter_dir / stem}.flac is not in {transcript.name}")
    return candidates


def prepare_librispeech(
    root: str | Path,
    subsets: Sequence[str],
    out_dir: str | Path,
    config: PrepareConfig | None = None,
    track: Track = no_progress,
) -> list[PrepareReport]:
    """Write `out_dir/<subset>.jsonl` for each subset of a LibriSpeech-layout tree.

    `root` holds `<subset>/<speaker>/<chapter>/` folders, or holds `LibriSpeech/` that
    does. Durations come from the flac headers. Missing audio, malformed transcript
    lines and untranscribed audio are counted, logged and skipped. `config` None: the
    defaults of `PrepareConfig`.
    """
    config = config or PrepareConfig()
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: no such folder")
    if not subsets:
        raise ManifestError("no subsets given (e.g. dev-clean,test-clean)")
    subset_dirs = {subset: _find_subset(root, subset) for subset in subsets}
    reports = []
    for subset, subset_dir in subset_dirs.items():
        skips = Skips()
        candidates = _librispeech_candidates(subset_dir, skips)
        reports.append(write_prepared(subset_dir, Path(out_dir) / f"{subset}.jsonl", candidates, skips, config, track))
    return reports
