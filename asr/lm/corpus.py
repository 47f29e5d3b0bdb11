"""Text for the language model: reading sentence files into batches, and writing LM text
from the synthetic recipe's sources without the sentences of the test and dev sets (or the
transcripts of a manifest, for a dev text).

A text file holds one sentence a line. Every line goes through `asr.text.normalize()`,
the normalisation of the acoustic model's targets; lines that normalise to nothing are
counted and skipped. Sentences are kept as one flat array of token ids, so a corpus of
millions of sentences costs about a byte a character; with a cache folder (what `asr lm
train` uses) that array is a file, written once and memory-mapped, so a corpus of the
LibriSpeech LM's size (4 GB of characters) neither sits in RAM nor is normalised again when a
run resumes.
"""

from __future__ import annotations

import json
import logging
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.atomic import atomic_open, atomic_write_text
from asr.data.manifest import read_manifest
from asr.errors import UserError
from asr.synthesis.sentences import choose_sentences
from asr.text import ALPHABET, Vocabulary, normalize

log = logging.getLogger(__name__)

_VOCAB = Vocabulary.default()
_IDS = bytes.maketrans("".join(ALPHABET).encode("ascii"), bytes(_VOCAB.tokens.index(ch) for ch in ALPHABET))
"""Maps the bytes of a normalised sentence (ASCII) to token ids."""


class LMTextError(UserError):
    """A text file that cannot be used for the language model."""


@dataclass(frozen=True)
class TextReport:
    """What reading text files kept and skipped."""

    files: tuple[str, ...]
    sentences: int
    characters: int
    empty: int
    """Lines that normalise to nothing (blank lines, only digits or symbols)."""
    too_long: int
    """Sentences over the length limit, skipped."""
    max_chars: int | None

    def summary(self) -> str:
        """One line: what was kept, what was skipped and why."""
        line = f"{', '.join(self.files)}: {self.sentences:,} sentences, {self.characters:,} characters"
        skipped = [f"{self.empty:,} lines empty after normalisation"]
        if self.max_chars is not None:
            skipped.append(f"{self.too_long:,} longer than {self.max_chars} characters")
        return f"{line}; skipped {' and '.join(skipped)}"


@dataclass(frozen=True)
class TextBatch:
    """Padded sentences: inputs <sos> + characters and targets characters + <eos>, both (B, L)
    padded with <pad>, and lengths (B,) = characters + 1."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor

    def to(self, device: torch.device) -> TextBatch:
        return TextBatch(self.inputs.to(device), self.targets.to(device), self.lengths.to(device))


class TextCorpus:
    """Normalised sentences as token ids: `ids` (total characters,) uint8 and `offsets` (N + 1,)
    int64, sentence i being `ids[offsets[i]:offsets[i + 1]]`; either may be a memory map."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray) -> None:
        self.ids = ids
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> list[int]:
        """Tokens each sentence costs in a batch: characters + 1 (<sos> in, <eos> out)."""
        return (np.diff(self.offsets) + 1).tolist()

    def text(self, index: int) -> str:
        """Sentence `index` as text."""
        return _VOCAB.decode(self.ids[self.offsets[index] : self.offsets[index + 1]].tolist())

    def batch(self, indices: Sequence[int]) -> TextBatch:
        """The sentences `indices` as a padded batch."""
        rows = np.asarray(indices, dtype=np.int64)  # (B,)
        lengths = self.offsets[rows + 1] - self.offsets[rows] + 1  # (B,) characters + 1
        inputs = np.full((len(indices), int(lengths.max())), _VOCAB.pad_id, dtype=np.int64)  # (B, L)
        targets = inputs.copy()
        for row, index in enumerate(indices):
            characters = self.ids[self.offsets[index] : self.offsets[index + 1]]
            inputs[row, 0] = _VOCAB.sos_id
            inputs[row, 1 : len(characters) + 1] = characters
            targets[row, : len(characters)] = characters
            targets[row, len(characters)] = _VOCAB.eos_id
        return TextBatch(torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(lengths))


def read_text(
    paths: Sequence[str | Path], max_chars: int | None = None, cache: str | Path | None = None
) -> tuple[TextCorpus, TextReport]:
    """Read one sentence a line from `paths`, normalised; sentences over `max_chars` characters
    (None: no limit) are skipped. Raises `LMTextError` naming a file that is missing or not
    UTF-8 text, or when no sentence is left.

    With `cache` (a folder), the token ids go to files there (`ids.u8`, `offsets.npy`,
    `report.json`) and the corpus memory-maps them; a later call with the same files (paths,
    sizes, modification times) and `max_chars` maps them without reading the text again."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists() or path.is_dir():  # a pipe (--text <(...)) reads as a file does
            raise LMTextError(f"{path}: {'is a folder, not a text file' if path.is_dir() else 'no such file'}")
    if cache is None:
        ids = bytearray()
        offsets, report = _encode(paths, max_chars, ids.extend)
        corpus = TextCorpus(np.frombuffer(ids, dtype=np.uint8), np.asarray(offsets, dtype=np.int64))
    else:
        corpus, report = _cached(paths, max_chars, Path(cache))
    log.info("%s", report.summary())
    return corpus, report


def _encode(paths: Sequence[Path], max_chars: int | None, write: Callable[[bytes], object]) -> tuple[array, TextReport]:
    """Normalise the lines of `paths`, handing each kept sentence's token ids to `write`; returns
    the sentence offsets (N + 1,) into what was written, and the report."""
    offsets = array("q", [0])
    empty = too_long = 0
    for path in paths:
        try:
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    sentence = normalize(line)
                    if not sentence:
                        empty += 1
                    elif max_chars is not None and len(sentence) > max_chars:
                        too_long += 1
                    else:
                        write(sentence.encode("ascii").translate(_IDS))
                        offsets.append(offsets[-1] + len(sentence))
        except UnicodeDecodeError as error:
            raise LMTextError(f"{path}: not UTF-8 text (byte {error.start} of a line)") from None
    report = TextReport(tuple(map(str, paths)), len(offsets) - 1, offsets[-1], empty, too_long, max_chars)
    if report.sentences == 0:
        raise LMTextError(f"{report.summary()}; no sentence is left to use")
    return offsets, report


_REPORT_FIELDS = ("sentences", "characters", "empty", "too_long")


def _kept_report(cache: Path, key: dict) -> dict[str, int] | None:
    """The counts that `cache/report.json` keeps for `key`, or None when it is absent, not
    JSON, of other files or settings, or garbled, or when the ids it describes are gone."""
    try:
        kept = json.loads((cache / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("key") != key:
        return None
    counts = kept.get("report")
    if not isinstance(counts, dict) or sorted(counts) != sorted(_REPORT_FIELDS):
        return None
    if not all(type(value) is int for value in counts.values()):
        return None
    if not (cache / "ids.u8").is_file() or not (cache / "offsets.npy").is_file():
        return None
    return counts


def _cached(paths: Sequence[Path], max_chars: int | None, cache: Path) -> tuple[TextCorpus, TextReport]:
    """The corpus of `paths` memory-mapped from `cache`, written there first unless `report.json`
    says it holds these files as they are now. `report.json` is written last: a folder cut
    while writing, or a report that is not what this function writes, is rebuilt."""
    stats = [(path, path.stat()) for path in paths]
    files = [{"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns} for path, stat in stats]
    key = {"files": files, "max_chars": max_chars, "alphabet": "".join(ALPHABET)}
    record = cache / "report.json"
    for name in ("ids.u8", "offsets.npy", "report.json"):  # what a killed write left (the trainer holds the folder)
        for stale in cache.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
    kept = _kept_report(cache, key)
    if kept is None:
        record.unlink(missing_ok=True)  # no report may describe ids of other text while they are rewritten
        with atomic_open(cache / "ids.u8", "wb") as handle:
            offsets, report = _encode(paths, max_chars, handle.write)
        with atomic_open(cache / "offsets.npy", "wb") as handle:
            np.save(handle, np.asarray(offsets, dtype=np.int64))
        counts = {name: getattr(report, name) for name in _REPORT_FIELDS}
        atomic_write_text(record, json.dumps({"key": key, "report": counts}, indent=1) + "\n")
        log.info("wrote the token ids of %s to %s", ", ".join(map(str, paths)), cache)
    else:
        report = TextReport(tuple(map(str, paths)), max_chars=max_chars, **kept)
    ids = np.memmap(cache / "ids.u8", dtype=np.uint8, mode="r")  # (characters,)
    return TextCorpus(ids, np.load(cache / "offsets.npy", mmap_mode="r")), report


@dataclass(frozen=True)
class LMText:
    """Normalised sentences for a language model, and how many were removed because a
    manifest to exclude (a test or dev set) holds them."""

    sentences: tuple[str, ...]
    sources: tuple[str, ...]
    removed: int
    excluded: int
    """Distinct normalised transcripts of the manifests to exclude."""

    def summary(self) -> str:
        return (
            f"{len(self.sentences):,} sentences from {', '.join(self.sources)}; removed {self.removed:,} that "
            f"the excluded manifests hold (of their {self.excluded:,} distinct transcripts)"
        )


def transcripts(manifests: Sequence[str | Path]) -> tuple[str, ...]:
    """The normalised transcripts of `manifests`, in order, without those that normalise to nothing
    (the dev text of an LM is the acoustic dev set's transcripts)."""
    texts = (normalize(u.text) for path in manifests for u in read_manifest(path))
    return tuple(text for text in texts if text)


def lm_text(sources: Sequence[str], exclude: Sequence[str | Path] = (), vocabulary: int = 0) -> LMText:
    """The sentences of the synthetic recipe's text `sources` (see `asr.synthesis.sentences.SOURCES`),
    normalised, each once, without any whose normalised text is a transcript of a manifest in
    `exclude`. `vocabulary` > 0 keeps only the sentences made of that many most frequent words,
    chosen as `asr synthesize --vocabulary` chooses them (the text of a closed-vocabulary corpus).
    Raises `TextSourceError` for a source that is unknown or not installed."""
    if vocabulary < 0:
        raise LMTextError(f"vocabulary must be a number of words, or 0 for all; got {vocabulary}")
    held_out = frozenset(transcripts(exclude))
    kept, removed = choose_sentences(sources, vocabulary, held_out)
    return LMText(tuple(s.transcript for s in kept), tuple(sources), removed, len(held_out))


def write_lm_text(sentences: Iterable[str], path: str | Path) -> int:
    """Write `sentences` one a line, atomically; returns how many."""
    count = 0
    with atomic_open(path) as handle:
        for sentence in sentences:
            handle.write(f"{sentence}\n")
            count += 1
    return count
