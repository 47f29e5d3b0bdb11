"""Manifests, filters, the dataset, collation and the length-bucketing sampler.

A manifest is a JSONL file, one utterance a line:
`{"id": ..., "audio": ..., "duration": seconds, "text": ..., "speaker": ... (optional)}`,
with `audio` absolute or relative to the manifest's folder. An utterance that is a cut of
a longer recording (a Kaldi `segments` entry) also has `"start"` and `"end"` in seconds
into the file, and `duration` = end - start.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from asr.atomic import atomic_open
from asr.audio import AudioError, audio_info, check_span, load_audio
from asr.augment import AugmentConfig, augment
from asr.errors import UserError
from asr.features import FeatureConfig, NormStats, compute_stats, speed_perturb
from asr.progress import Track, no_progress
from asr.text import Vocabulary, dropped_kind, normalize

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


class Transcribed(Protocol):
    """Anything with an id and a transcript: an `Utterance`, a candidate of `asr.prepare`."""

    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...


def text_notes(items: Iterable[Transcribed], expand_option: str | None) -> tuple[str, ...]:
    """One line per kind of character that `normalize()` drops from these transcripts (digits, letters
    outside A-Z, symbols): how many transcripts hold it, and the first. `expand_option` names what
    spells digits as words; None: numbers were spelt already, and the digits left are glued to signs."""
    found: dict[str, list[tuple[Transcribed, str]]] = {}
    for item in items:
        lost: dict[str, str] = {}
        for character in item.text:
            kind = dropped_kind(character)
            if kind is not None:
                lost.setdefault(kind, character)
        for kind, character in lost.items():
            found.setdefault(kind, []).append((item, character))
    notes = []
    for kind, hits in sorted(found.items()):
        first, character = hits[0]
        example = f"e.g. {character!r} in {first.id}: {first.text[:60]!r}"
        if kind == "digits" and expand_option is None:
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
            what = "letters outside A-Z" if kind == "letters" else "symbols"
            notes.append(f"transcripts holding {what}: {len(hits)} ({example}), which normalize() drops")
    return tuple(notes)


@dataclass(frozen=True)
class FilterConfig:
    """Which utterances training uses: durations in seconds, target length in characters."""

    min_duration: float = 0.0
    max_duration: float = math.inf
    max_target_length: int | None = None


def filter_utterances(utterances: Sequence[Utterance], config: FilterConfig, report: bool = True) -> list[Utterance]:
    """Keep utterances within the limits; log how many were dropped and why, and what `normalize()`
    drops from the transcripts kept (`text_notes`), if `report` (one process of a distributed run
    reports for all)."""
    kept = []
    dropped: Counter[str] = Counter()
    for u in utterances:
        length = len(normalize(u.text))
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
    for note in text_notes(kept, "asr prepare --expand-numbers") if report else ():
        log.warning("training %s", note)
    return kept


@dataclass(frozen=True)
class Example:
    """One utterance ready for collation: waveform (N,) at 16 kHz, target ids (L,); or, when its
    audio could not be read, the one-line `error` that names the file (and empty tensors)."""

    id: str
    waveform: torch.Tensor
    targets: torch.Tensor
    error: str | None = None


class SpeechDataset(Dataset[Example]):
    """Loads audio and encodes transcripts.

    With several `speed_factors`, each item is played at one of them, and with an `augment`
    config it is augmented (`asr.augment`; babble is made of other utterances of the set); both
    are drawn from (seed, epoch, index) alone: the same epoch gives the same choices in any
    worker, so a resumed run sees the same data as an uninterrupted one.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        vocab: Vocabulary,
        speed_factors: Sequence[float] = (1.0,),
        seed: int = 0,
        augment: AugmentConfig | None = None,
    ) -> None:
        if not speed_factors or min(speed_factors) <= 0:
            raise ValueError(f"speed_factors must be positive numbers, got {speed_factors}")
        self.utterances = list(utterances)
        self.vocab = vocab
        self.speed_factors = tuple(speed_factors)
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch `epoch`'s speed factors (call before creating the DataLoader iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Example:
        """The utterance, or an `Example` carrying the error of audio that cannot be read (returned, not
        raised: a DataLoader worker would wrap it in a traceback and stop the whole run)."""
        utterance = self.utterances[index]
        try:
            waveform = utterance.load()
        except AudioError as error:
            return Example(
                utterance.id, torch.zeros(0), torch.zeros(0, dtype=torch.long), f"utterance {utterance.id}: {error}"
            )
        if len(self.speed_factors) > 1:
            rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
            waveform = speed_perturb(waveform, rng.choice(self.speed_factors))
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            waveform = augment(waveform, self.augment, rng, self._talker)
        targets = torch.tensor(self.vocab.encode(utterance.text), dtype=torch.long)
        return Example(utterance.id, waveform, targets)

    def _talker(self, rng: np.random.Generator) -> np.ndarray:
        """A random training utterance for babble; one that cannot be read is silence here (its own
        turn reports it)."""
        try:
            return self.utterances[int(rng.integers(len(self.utterances)))].load().numpy()
        except AudioError:
            return np.zeros(0)


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
    failed: tuple[str, ...] = ()
    """One line per utterance of the batch whose audio could not be read (left out of the tensors)."""

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with its tensors on `device`."""
        return Batch(
            self.ids,
            self.waveforms.to(device, non_blocking=True),
            self.waveform_lengths.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            self.target_lengths.to(device, non_blocking=True),
            self.failed,
        )


def collate(examples: Sequence[Example], pad_id: int) -> Batch:
    """Pad waveforms with zeros and targets with `pad_id`; examples whose audio failed are left out
    and listed in `failed` (a batch may end up with no utterance at all)."""
    failed = tuple(e.error for e in examples if e.error is not None)
    examples = [e for e in examples if e.error is None]
    if not examples:
        empty = torch.zeros(0, dtype=torch.long)
        return Batch((), torch.zeros(0, 0), empty, torch.zeros(0, 0, dtype=torch.long), empty, failed)
    waveforms = torch.nn.utils.rnn.pad_sequence([e.waveform for e in examples], batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence([e.targets for e in examples], batch_first=True, padding_value=pad_id)
    return Batch(
        ids=tuple(e.id for e in examples),
        waveforms=waveforms,
        waveform_lengths=torch.tensor([e.waveform.shape[0] for e in examples]),
        targets=targets,
        target_lengths=torch.tensor([e.targets.shape[0] for e in examples]),
        failed=failed,
    )


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length whose padded size stays within a frame budget.

    Each batch satisfies `len(batch) * max(lengths in batch) <= max_frames` (the padded
    frames it costs). Every epoch, lengths get a little seeded random jitter before
    sorting (so batches differ between epochs while padding stays low) and the batch
    order is shuffled; the same seed and epoch give the same batches. With
    `num_replicas` > 1 each rank takes every `num_replicas`-th batch and all ranks get
    the same number. `set_epoch(epoch, start_batch)` resumes mid-epoch.

    The first `sorted_epochs` epochs keep the batches shortest first instead of
    shuffling them (SortaGrad, Amodei et al. 2016): an attention model learns to
    align on short utterances before it meets long ones.
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
        sorted_epochs: int = 0,
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
        self.sorted_epochs = sorted_epochs
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
        if self.shuffle and epoch >= self.sorted_epochs:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[self.rank : usable : self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start_batch :]

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.start_batch)


def first_unreadable(utterances: Sequence[Utterance], threads: int = 8) -> tuple[Utterance, AudioError] | None:
    """The first utterance (in order) whose audio header cannot be read, or whose cut lies past its
    recording's end (`audio.check_span`), with its error; headers are read by `threads` threads at once."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for utterance, error in zip(utterances, pool.map(_header_error, utterances), strict=True):
            if error is not None:
                return utterance, error
    return None


def _header_error(utterance: Utterance) -> AudioError | None:
    try:
        info = audio_info(utterance.audio)
        if utterance.end is not None:
            check_span(utterance.audio, info, utterance.start, utterance.end)
    except AudioError as error:
        return error
    return None


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
            return self.utterances[index].load()
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
