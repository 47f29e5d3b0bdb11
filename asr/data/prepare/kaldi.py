"""A Kaldi data directory: wav.scp, text, and optionally utt2spk and segments.

This is how ESPnet, icefall, lhotse and most corpora exchange data.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from asr.data.manifest import ManifestError
from asr.data.prepare.common import Candidate, PrepareConfig, PrepareReport, Skips, read_text, write_prepared
from asr.progress import Track, no_progress

log = logging.getLogger(__name__)


def _kaldi_table(path: Path, skips: Skips) -> dict[str, tuple[int, str]]:
    """Each line of a Kaldi table as id -> (line number, the rest of the line); a repeated id is skipped."""
    table: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if parts[0] in table:
            first = table[parts[0]][0]
            skips.add(f"malformed {path.name} line", f"{path}:{number}: '{parts[0]}' already on line {first}")
            continue
        table[parts[0]] = (number, parts[1].strip() if len(parts) == 2 else "")
    return table


def _audio_base(data_dir: Path, relative: Sequence[str]) -> Path:
    """The folder that wav.scp's relative paths start from.

    The first of these under which one of the first ten relative paths exists: the
    current folder (Kaldi's rule), the data directory's parent (a corpus root holding
    `train/`), its grandparent (the recipe folder holding `data/train/`, where Kaldi
    runs), the data directory itself.
    """
    bases = [Path.cwd(), data_dir.parent, data_dir.parent.parent, data_dir]
    sample = relative[:10]
    for base in bases:
        if any((base / p).is_file() for p in sample):
            return base
    if sample:
        log.warning("no wav.scp path of %s exists under %s", data_dir, ", ".join(map(str, bases)))
    return bases[0]


def _recordings(data_dir: Path, skips: Skips, malformed: set[str]) -> dict[str, Path]:
    """wav.scp: recording (or utterance) id -> absolute audio path (the ids of lines skipped as
    malformed are added to `malformed`). Commands (`... |`) are refused."""
    path = data_dir / "wav.scp"
    values = {}
    for recording, (number, value) in _kaldi_table(path, skips).items():
        if not value:
            skips.add("malformed wav.scp line", f"{path}:{number}: no audio path after '{recording}'")
            malformed.add(recording)
        elif value.endswith("|"):
            raise ManifestError(
                f"{path}:{number}: '{recording}' is a command ({value[:40]}), not a file; "
                "convert the audio to files first (e.g. run each command to write a .wav) and list their paths"
            )
        else:
            values[recording] = value
    base = _audio_base(data_dir, [v for v in values.values() if not Path(v).is_absolute()])
    return {recording: Path(os.path.normpath(base / value)) for recording, value in values.items()}


def _segment_times(fields: list[str]) -> tuple[float, float | None] | None:
    """(start, end) of `<recording> <start> <end>`, end None for Kaldi's -1 (to the end); None if malformed."""
    if len(fields) != 3:
        return None
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError:
        return None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
        return None
    if end == -1:
        return start, None
    return (start, end) if end > start else None


def _segments(path: Path, skips: Skips, malformed: set[str]) -> dict[str, tuple[str, float, float | None]]:
    """segments: utterance id -> (recording id, start, end or None) in seconds (the ids of lines
    skipped as malformed are added to `malformed`)."""
    spans = {}
    for utterance, (number, rest) in _kaldi_table(path, skips).items():
        fields = rest.split()
        times = _segment_times(fields)
        if times is None:
            skips.add(
                "malformed segments line",
                f"{path}:{number}: expected '<utterance> <recording> <start> <end>' in seconds with "
                f"0 <= start < end (end -1: to the recording's end), found '{utterance} {rest}'",
            )
            malformed.add(utterance)
            continue
        spans[utterance] = (fields[0], *times)
    return spans


def _speakers(path: Path, skips: Skips) -> dict[str, str]:
    """utt2spk: utterance id -> speaker."""
    speakers = {}
    for utterance, (number, rest) in _kaldi_table(path, skips).items():
        if len(rest.split()) != 1:
            skips.add("malformed utt2spk line", f"{path}:{number}: expected '<utterance> <speaker>'")
            continue
        speakers[utterance] = rest
    return speakers


def _kaldi_candidates(data_dir: Path, skips: Skips) -> list[Candidate]:
    malformed: set[str] = set()  # ids skipped (and counted) once already: not counted again below
    recordings = _recordings(data_dir, skips, malformed)
    text_path, utt2spk, segments = data_dir / "text", data_dir / "utt2spk", data_dir / "segments"
    texts = _kaldi_table(text_path, skips)
    speakers = _speakers(utt2spk, skips) if utt2spk.is_file() else {}
    if segments.is_file():
        spans, listing = _segments(segments, skips, malformed), segments
    else:
        spans, listing = {recording: (recording, None, None) for recording in recordings}, data_dir / "wav.scp"
    candidates = []
    for utterance, (number, text) in texts.items():
        if utterance in malformed:
            continue
        if utterance not in spans:
            skips.add("no audio entry", f"{text_path}:{number}: '{utterance}' is not in {listing}")
            continue
        recording, start, end = spans[utterance]
        if recording not in recordings:
            skips.add("no audio entry", f"'{utterance}': its recording '{recording}' is not in wav.scp")
        elif not text:
            skips.add("empty text", f"{text_path}:{number}")
        elif not recordings[recording].is_file():
            skips.add("missing audio", f"{recordings[recording]} ('{utterance}')")
        else:
            candidates.append(Candidate(utterance, recordings[recording], text, speakers.get(utterance), start, end))
    for utterance in sorted(spans.keys() - texts.keys()):
        skips.add("no transcript", f"'{utterance}' of {listing} is not in {text_path}")
    return candidates


def prepare_kaldi(
    data_dir: str | Path, out: str | Path, config: PrepareConfig | None = None, track: Track = no_progress
) -> PrepareReport:
    """Write a manifest from a Kaldi data directory.

    Reads `wav.scp` (`<id> <path>`), `text` (`<utterance> <transcript>`), and when
    present `utt2spk` (`<utterance> <speaker>`) and `segments` (`<utterance>
    <recording> <start> <end>`, seconds; end -1 runs to the recording's end). Without
    `segments` the wav.scp ids are utterance ids. A segmented utterance's manifest line
    also holds `"start"` and `"end"` (seconds in the recording); its `duration` is
    end - start. Relative paths in wav.scp are taken from the first of the current
    folder, the data directory's parent, its grandparent and the data directory itself
    that holds them (see `_audio_base`). Commands in wav.scp (`sox ... |`) are refused: convert the
    audio to files first. `spk2utt` and other files are not read.
    """
    config = config or PrepareConfig()
    data_dir = Path(os.path.normpath(Path(data_dir).absolute()))
    if not data_dir.is_dir():
        raise ManifestError(f"{data_dir}: no such folder")
    for needed in ("wav.scp", "text"):
        if not (data_dir / needed).is_file():
            raise ManifestError(f"{data_dir}: no {needed}; a Kaldi data directory holds wav.scp and text")
    skips = Skips()
    candidates = _kaldi_candidates(data_dir, skips)
    return write_prepared(data_dir, Path(out), candidates, skips, config, track)
