"""Manifests, data preparation, the dataset, collation and the length-bucketing sampler.

A manifest is a JSONL file, one utterance a line:
`{"id": ..., "audio": ..., "duration": seconds, "text": ..., "speaker": ... (optional)}`,
with `audio` absolute or relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from asr.atomic import atomic_open
from asr.audio import AudioError, AudioInfo, audio_info, load_audio
from asr.errors import UserError
from asr.features import FeatureConfig, NormStats, compute_stats, speed_perturb
from asr.text import Vocabulary, normalize

log = logging.getLogger(__name__)

T = TypeVar("T")
Track = Callable[[Iterable[T], int, str], Iterable[T]]
"""`track(items, total, description)` yields `items`; entry points pass a progress bar."""


def no_progress(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A `Track` that shows nothing."""
    return items


class ManifestError(UserError):
    """A manifest, transcript table or corpus folder that cannot be used."""


@dataclass(frozen=True)
class Utterance:
    """One manifest line: `audio` is an absolute path, `duration` in seconds."""

    id: str
    audio: Path
    duration: float
    text: str
    speaker: str | None = None

    def to_json(self) -> str:
        record = {"id": self.id, "audio": str(self.audio), "duration": round(self.duration, 4), "text": self.text}
        if self.speaker is not None:
            record["speaker"] = self.speaker
        return json.dumps(record, ensure_ascii=False)


_FIELD_TYPES = {"id": str, "audio": str, "duration": (int, float), "text": str}


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
    return Utterance(
        id=record["id"],
        audio=(folder / record["audio"]).absolute(),
        duration=duration,
        text=record["text"],
        speaker=None if speaker is None else str(speaker),
    )


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a JSONL manifest; errors name the file, line and key. An empty manifest is an error."""
    path = Path(path)
    if not path.is_file():
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
    """Write `utterances` as JSONL, atomically."""
    with atomic_open(path) as handle:
        for utterance in utterances:
            handle.write(utterance.to_json() + "\n")


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


@dataclass(frozen=True)
class FilterConfig:
    """Which utterances training uses: durations in seconds, target length in characters."""

    min_duration: float = 0.0
    max_duration: float = math.inf
    max_target_length: int | None = None


def filter_utterances(utterances: Sequence[Utterance], config: FilterConfig) -> list[Utterance]:
    """Keep utterances within the limits; log how many were dropped and why."""
    kept = []
    dropped: Counter[str] = Counter()
    for u in utterances:
        length = len(normalize(u.text))
        if length == 0:
            dropped["empty transcript"] += 1
        elif u.duration < config.min_duration:
            dropped[f"shorter than {config.min_duration} s"] += 1
        elif u.duration > config.max_duration:
            dropped[f"longer than {config.max_duration} s"] += 1
        elif config.max_target_length is not None and length > config.max_target_length:
            dropped[f"more than {config.max_target_length} characters"] += 1
        else:
            kept.append(u)
    for reason, count in sorted(dropped.items()):
        log.info("dropped %d of %d utterances: %s", count, len(utterances), reason)
    return kept


@dataclass(frozen=True)
class Example:
    """One utterance ready for collation: waveform (N,) at 16 kHz, target ids (L,)."""

    id: str
    waveform: torch.Tensor
    targets: torch.Tensor


class SpeechDataset(Dataset[Example]):
    """Loads audio and encodes transcripts; optional speed perturbation picks a factor per item."""

    def __init__(
        self, utterances: Sequence[Utterance], vocab: Vocabulary, speed_factors: Sequence[float] = (1.0,)
    ) -> None:
        if not speed_factors or min(speed_factors) <= 0:
            raise ValueError(f"speed_factors must be positive numbers, got {speed_factors}")
        self.utterances = list(utterances)
        self.vocab = vocab
        self.speed_factors = tuple(speed_factors)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Example:
        utterance = self.utterances[index]
        waveform, _ = load_audio(utterance.audio)
        if len(self.speed_factors) > 1:
            factor = self.speed_factors[int(torch.randint(len(self.speed_factors), ()))]
            waveform = speed_perturb(waveform, factor)
        targets = torch.tensor(self.vocab.encode(utterance.text), dtype=torch.long)
        return Example(utterance.id, waveform, targets)


@dataclass(frozen=True)
class Batch:
    """Padded waveforms (B, N) with sample counts (B,), padded targets (B, L) with lengths (B,).

    Features are computed from the waveforms by `features.LogMel` on the device that
    trains or decodes.
    """

    ids: tuple[str, ...]
    waveforms: torch.Tensor
    waveform_lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with its tensors on `device`."""
        return Batch(
            self.ids,
            self.waveforms.to(device, non_blocking=True),
            self.waveform_lengths.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            self.target_lengths.to(device, non_blocking=True),
        )


def collate(examples: Sequence[Example], pad_id: int) -> Batch:
    """Pad waveforms with zeros and targets with `pad_id`."""
    waveforms = torch.nn.utils.rnn.pad_sequence([e.waveform for e in examples], batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence([e.targets for e in examples], batch_first=True, padding_value=pad_id)
    return Batch(
        ids=tuple(e.id for e in examples),
        waveforms=waveforms,
        waveform_lengths=torch.tensor([e.waveform.shape[0] for e in examples]),
        targets=targets,
        target_lengths=torch.tensor([e.targets.shape[0] for e in examples]),
    )


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length whose padded size stays within a frame budget.

    Each batch satisfies `len(batch) * max(lengths in batch) <= max_frames` (the padded
    frames it costs). Every epoch, lengths get a little seeded random jitter before
    sorting (so batches differ between epochs while padding stays low) and the batch
    order is shuffled; the same seed and epoch give the same batches. With
    `num_replicas` > 1 each rank takes every `num_replicas`-th batch and all ranks get
    the same number. `set_epoch(epoch, start_batch)` resumes mid-epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        jitter: float = 0.05,
        max_batch_size: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        too_long = [i for i, n in enumerate(lengths) if n > max_frames]
        if too_long:
            raise ValueError(
                f"{len(too_long)} utterances are longer than max_frames={max_frames} "
                f"(the longest has {max(lengths)} frames); raise max_frames or lower max_duration"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must lie in [0, 1), got {jitter}")
        self.lengths = list(lengths)
        self.max_frames = max_frames
        self.seed = seed
        self.shuffle = shuffle
        self.jitter = jitter
        self.max_batch_size = max_batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate epoch `epoch` next, skipping its first `start_batch` batches of this rank."""
        self.epoch = epoch
        self.start_batch = start_batch

    def batches(self, epoch: int) -> list[list[int]]:
        """All of this rank's batches of `epoch`, in order."""
        rng = random.Random(self.seed * 1_000_003 + epoch)
        if self.shuffle:
            keys = [n * (1 + self.jitter * rng.uniform(-1, 1)) for n in self.lengths]
            order = sorted(range(len(keys)), key=lambda i: (keys[i], rng.random()))
        else:
            order = sorted(range(len(self.lengths)), key=self.lengths.__getitem__)
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        for index in order:
            longest_with = max(longest, self.lengths[index])
            full = self.max_batch_size is not None and len(batch) >= self.max_batch_size
            if batch and (full or (len(batch) + 1) * longest_with > self.max_frames):
                batches.append(batch)
                batch, longest_with = [], self.lengths[index]
            batch.append(index)
            longest = longest_with
        if batch:
            batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[self.rank : usable : self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start_batch :]

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.start_batch)


class _Waveforms(Dataset["torch.Tensor | AudioError"]):
    """Decoded waveforms (N,), or the `AudioError` of a file that failed.

    Returning the error (rather than raising it in a DataLoader worker, which wraps it
    in a traceback) lets the caller raise it with its one-line message intact.
    """

    def __init__(self, utterances: Sequence[Utterance]) -> None:
        self.utterances = utterances

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> torch.Tensor | AudioError:
        try:
            return load_audio(self.utterances[index].audio)[0]
        except AudioError as error:
            return error


def manifest_stats(
    utterances: Sequence[Utterance], config: FeatureConfig, jobs: int = 2, track: Track = no_progress
) -> NormStats:
    """Normalisation statistics of the log-mel features of `utterances`, in one streaming pass.

    Audio is decoded by `jobs` DataLoader workers. Raises the `AudioError` of the first
    unreadable file.
    """
    loader = DataLoader(_Waveforms(utterances), batch_size=None, num_workers=jobs)

    def waveforms() -> Iterator[torch.Tensor]:
        for item in track(loader, len(utterances), "statistics"):
            if isinstance(item, AudioError):
                raise item
            yield item

    return compute_stats(waveforms(), config)
