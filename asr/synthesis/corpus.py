"""A synthetic corpus in the LibriSpeech layout: speakers, the seeded split, the writer, the check.

`ROOT/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` (16 kHz mono, PCM_16)
with `<speaker>-<chapter>.trans.txt` per chapter and `ROOT/SPEAKERS.TXT`, so that
`asr prepare librispeech ROOT --subsets train,dev,test` reads it unchanged.

The subsets are `train`, `dev` and `test` (no "-clean": some utterances carry noise).
They share no voice (no talker, even across engines: flite's and festival's "slt"
are one) and no sentence. Everything is decided by `CorpusConfig` and its seed before
any audio is made; the settings are kept in `ROOT/synthesis.json`, and a second run
with the same settings synthesises only the files that are missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from collections import defaultdict
from collections.abc import Collection, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import torch

from asr.atomic import atomic_open, atomic_write_text
from asr.frontend.audio import SAMPLE_RATE
from asr.progress import Track, no_progress
from asr.synthesis.config import SETTINGS_FILE, SUBSETS, CorpusConfig, CorpusError
from asr.synthesis.engines import add_noise, synthesize
from asr.synthesis.plan import Chapter, plan_corpus
from asr.synthesis.sentences import choose_sentences
from asr.synthesis.voices import Speaker, check_engines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChapterResult:
    """What one chapter task did: utterances made now and their seconds of audio."""

    chapter: int
    synthesized: int
    seconds: float


def _write_flac(path: Path, waveform: np.ndarray) -> None:
    """16 kHz mono PCM_16 flac, written beside `path` and renamed: never a half file."""
    with atomic_open(path, "wb") as handle:
        soundfile.write(handle, waveform, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def synthesize_chapter(root: Path, chapter: Chapter) -> ChapterResult:
    """Make the chapter's missing flac files, then its transcript; finished files are left alone."""
    folder = chapter.folder(root)
    pending = [u for u in chapter.utterances if not (folder / f"{u.id}.flac").is_file()]
    transcript = folder / chapter.transcript_name
    seconds = 0.0
    if pending:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="synthesis-") as workdir:
            waveforms = synthesize(chapter.speaker, [u.spoken for u in pending], Path(workdir))
        for utterance, speech in zip(pending, waveforms, strict=True):
            lead, tail = (np.zeros(round(t * SAMPLE_RATE), speech.dtype) for t in (utterance.lead, utterance.tail))
            waveform = np.concatenate([lead, speech, tail])
            if utterance.noise is not None:
                rng = np.random.default_rng(utterance.noise_seed)
                waveform = add_noise(waveform, utterance.noise, utterance.snr_db, rng)
            _write_flac(folder / f"{utterance.id}.flac", waveform)
            seconds += len(waveform) / SAMPLE_RATE
    if pending or not transcript.is_file():
        atomic_write_text(transcript, "".join(f"{u.id} {u.transcript}\n" for u in chapter.utterances))
    return ChapterResult(chapter.id, len(pending), seconds)


def _one_thread() -> None:
    torch.set_num_threads(1)  # one worker per core: torch's own threads would only compete


def _check_settings(root: Path, config: CorpusConfig, exclude: Collection[str]) -> None:
    """Record `config` (and a digest of the sentences excluded, when there are some) in
    ROOT/synthesis.json, or refuse a folder made with other settings."""
    path = root / SETTINGS_FILE
    settings = json.loads(json.dumps(asdict(config)))  # tuples -> lists, as read back
    for key, default in (("unheard_engines", []), ("language", "en")):
        if settings[key] == default:
            del settings[key]  # as folders made before the setting existed recorded
    if exclude:
        digest = hashlib.sha256("\n".join(sorted(exclude)).encode()).hexdigest()
        settings["excluded_sentences"] = {"count": len(exclude), "sha256": digest}
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise CorpusError(f"{path}: not valid JSON ({error.msg}); remove it or use a new output folder") from None
        changed = sorted(key for key in settings.keys() | recorded.keys() if settings.get(key) != recorded.get(key))
        if changed:
            raise CorpusError(
                f"{root} was made with other settings (changed: {', '.join(changed)}); "
                f"use a new output folder, or the settings recorded in {path}"
            )
    else:
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


@dataclass(frozen=True)
class SubsetSummary:
    """One subset as written: counts and total seconds of audio."""

    subset: str
    speakers: int
    chapters: int
    utterances: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.subset}: {self.utterances} utterances, {self.seconds / 3600:.2f} h, "
            f"{self.speakers} speakers, {self.chapters} chapters"
        )


@dataclass(frozen=True)
class SynthesisReport:
    """What a run made (`synthesized` now, the rest were already there) and the corpus it left."""

    root: Path
    synthesized: int
    subsets: tuple[SubsetSummary, ...] = field(default_factory=tuple)
    excluded: int = 0
    """Sentences of the texts left out because `exclude` holds them."""


def write_speakers(root: Path, chapters: Sequence[Chapter], jobs: int = 1) -> tuple[SubsetSummary, ...]:
    """Write ROOT/SPEAKERS.TXT in LibriSpeech's format (minutes from the flac headers)."""
    paths = [chapter.folder(root) / f"{u.id}.flac" for chapter in chapters for u in chapter.utterances]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        seconds = dict(zip(paths, pool.map(lambda p: soundfile.info(str(p)).duration, paths), strict=True))
    per_speaker: dict[tuple[str, Speaker], float] = defaultdict(float)
    for chapter in chapters:
        for u in chapter.utterances:
            per_speaker[(chapter.subset, chapter.speaker)] += seconds[chapter.folder(root) / f"{u.id}.flac"]
    lines = [
        "; Speakers of a synthetic corpus made by asr synthesize: each is a text-to-speech",
        "; voice at a speaking rate and a pitch shift in semitones (NAME: engine voice rate pitch).",
        ";ID  |SEX| SUBSET           |MINUTES| NAME",
    ]
    for (subset, speaker), total in sorted(per_speaker.items(), key=lambda item: item[0][1].id):
        lines.append(f"{speaker.id:<5}| {speaker.voice.sex} | {subset:<17}| {total / 60:5.2f} | {speaker.description}")
    atomic_write_text(root / "SPEAKERS.TXT", "\n".join(lines) + "\n")
    summaries = []
    for subset in SUBSETS:
        mine = [c for c in chapters if c.subset == subset]
        if mine:
            summaries.append(
                SubsetSummary(
                    subset=subset,
                    speakers=len({c.speaker.id for c in mine}),
                    chapters=len(mine),
                    utterances=sum(len(c.utterances) for c in mine),
                    seconds=sum(total for (s, _), total in per_speaker.items() if s == subset),
                )
            )
    return tuple(summaries)


def synthesize_corpus(
    root: str | Path,
    config: CorpusConfig,
    jobs: int = 1,
    track: Track = no_progress,
    exclude: Collection[str] = (),
) -> SynthesisReport:
    """Write the corpus `config` describes under `root`, one process per chapter, `jobs` at a time.
    No utterance reads a sentence whose normalised transcript `exclude` holds (say, the test and
    dev sets of a real corpus trained on next to this one).

    Raises `EngineMissingError` (naming the Debian package) for an engine that is not
    installed and `CorpusError` for a folder made with other settings (or other exclusions).
    Files already there are kept: an interrupted run resumes where it stopped.
    """
    root = Path(root)
    check_engines(config.engines)
    root.mkdir(parents=True, exist_ok=True)
    exclude = frozenset(exclude)
    _check_settings(root, config, exclude)
    sentences, excluded = choose_sentences(config.texts, config.vocabulary, exclude)
    chapters = plan_corpus(config, sentences)
    synthesized = 0
    with ProcessPoolExecutor(max_workers=max(1, jobs), initializer=_one_thread) as pool:
        futures = [pool.submit(synthesize_chapter, root, chapter) for chapter in chapters]
        for future in track(as_completed(futures), len(futures), "chapters"):
            synthesized += future.result().synthesized
    log.info(
        "synthesised %d utterances, %d were already there",
        synthesized,
        sum(len(c.utterances) for c in chapters) - synthesized,
    )
    return SynthesisReport(root, synthesized, write_speakers(root, chapters, jobs), excluded)


@dataclass(frozen=True)
class CheckConfig:
    """What the check pass calls broken: clipped when more than `clipped_fraction` of the
    samples reach `clip_level` (full scale 1.0); silent when the RMS is below `silence_dbfs`."""

    clip_level: float = 0.999
    clipped_fraction: float = 0.001
    silence_dbfs: float = -50.0


@dataclass(frozen=True)
class Problem:
    """A file the check pass rejects, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def check_file(path: Path, config: CheckConfig) -> Problem | None:
    """The problem with one audio file (empty, unreadable, clipped or silent), or None."""
    try:
        samples, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        return Problem(path, f"unreadable ({error})")
    if samples.size == 0:
        return Problem(path, "empty (0 samples)")
    clipped = float(np.mean(np.abs(samples) >= config.clip_level))
    if clipped > config.clipped_fraction:
        return Problem(path, f"clipped ({100 * clipped:.2f}% of samples at |x| >= {config.clip_level})")
    rms_dbfs = 10 * math.log10(max(float(np.mean(samples.astype(np.float64) ** 2)), 1e-20))
    if rms_dbfs < config.silence_dbfs:
        return Problem(path, f"silent (RMS {rms_dbfs:.1f} dBFS, below {config.silence_dbfs:g})")
    return None


def check_corpus(root: str | Path, config: CheckConfig = CheckConfig(), jobs: int = 1) -> list[Problem]:
    """Every empty, unreadable, clipped or silent flac under ROOT/<subset>/<speaker>/<chapter>/, by path;
    `CorpusError` when there is none to check."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder")
    paths = sorted(root.glob("*/*/*/*.flac"))
    if not paths:
        raise CorpusError(f"{root}: no flac files in <subset>/<speaker>/<chapter>/ folders to check; is it a corpus?")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        problems = [p for p in pool.map(lambda path: check_file(path, config), paths) if p is not None]
    log.info("checked %d files under %s: %d problems", len(paths), root, len(problems))
    return problems
