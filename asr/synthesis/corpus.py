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
import random
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
from asr.audio import SAMPLE_RATE
from asr.errors import UserError
from asr.progress import Track, no_progress
from asr.synthesis.engines import ENGINES, NOISE_COLORS, VOICES, Speaker, Voice, add_noise, check_engines, synthesize
from asr.synthesis.sentences import SOURCES, Sentence, choose_sentences

log = logging.getLogger(__name__)

SUBSETS: tuple[str, ...] = ("train", "dev", "test")
SETTINGS_FILE = "synthesis.json"
FIRST_SPEAKER_ID = 100
CHAPTERS_PER_SUBSET = 100_000
"""Chapter ids: train 100000 + k, dev 200000 + k, test 300000 + k."""


class CorpusError(UserError):
    """Settings that cannot make a corpus, or an output folder made with other settings."""


@dataclass(frozen=True)
class CorpusConfig:
    """What to synthesise. Sizes are utterance counts; rates are speed factors (1.0: the
    engine's default); pitches are shifts in semitones; SNRs in dB.

    Each held-out subset (dev, test) gets `held_out_voice_fraction` of the talkers of
    each kind (espeak's synthetic voices; the recorded people behind flite and festival),
    at least one of each kind that has three or more.

    `vocabulary` > 0 keeps only the sentences made of that many most frequent words of
    the texts (a closed vocabulary, as in WSJ's 5k task); 0 keeps every sentence.
    Each utterance gets `edge_silence` (low, high) seconds of silence before and after
    its speech, drawn uniformly: engines start on the first phoneme, recordings seldom do,
    and a model that never heard a silent start is thrown by one.
    """

    train_utterances: int = 3000
    dev_utterances: int = 200
    test_utterances: int = 300
    chapter_utterances: int = 20
    engines: tuple[str, ...] = ENGINES
    texts: tuple[str, ...] = tuple(SOURCES)
    vocabulary: int = 0
    rates: tuple[float, ...] = (0.85, 1.0, 1.15)
    pitches: tuple[float, ...] = (-2.0, 0.0, 2.0)
    held_out_voice_fraction: float = 0.1
    noise_prob: float = 0.0
    snr_db: tuple[float, float] = (5.0, 30.0)
    edge_silence: tuple[float, float] = (0.05, 0.4)
    seed: int = 0

    def __post_init__(self) -> None:
        sizes = (self.train_utterances, self.dev_utterances, self.test_utterances)
        if min(sizes) < 0 or sum(sizes) == 0:
            raise CorpusError(f"utterance counts must be 0 or more and not all 0; got train/dev/test {sizes}")
        if self.chapter_utterances < 1:
            raise CorpusError(f"chapter_utterances must be at least 1, got {self.chapter_utterances}")
        if max(sizes) > self.chapter_utterances * (CHAPTERS_PER_SUBSET - 1):
            raise CorpusError(f"at most {CHAPTERS_PER_SUBSET - 1} chapters per subset; raise chapter_utterances")
        unknown = [e for e in self.engines if e not in ENGINES]
        if not self.engines or unknown:
            raise CorpusError(f"engines must be some of {', '.join(ENGINES)}; got {', '.join(self.engines) or 'none'}")
        unknown = [t for t in self.texts if t not in SOURCES]
        if not self.texts or unknown:
            raise CorpusError(f"texts must be some of {', '.join(SOURCES)}; got {', '.join(self.texts) or 'none'}")
        if self.vocabulary < 0:
            raise CorpusError(f"vocabulary must be a number of words, or 0 for all; got {self.vocabulary}")
        numbers = {"rates": self.rates, "pitches": self.pitches, "snr_db": self.snr_db}
        for name, values in numbers.items():
            if not all(math.isfinite(value) for value in values):
                raise CorpusError(f"{name} must be finite numbers, got {', '.join(map(str, values))}")
        if not self.rates or min(self.rates) <= 0:
            raise CorpusError(f"rates must be positive speed factors, got {self.rates}")
        if not self.pitches or max(abs(p) for p in self.pitches) > 12:
            raise CorpusError(f"pitches must be shifts of -12 to 12 semitones, got {self.pitches}")
        if not 0 < self.held_out_voice_fraction < 0.5:
            raise CorpusError(
                f"held_out_voice_fraction must be above 0 and below 0.5, got {self.held_out_voice_fraction}"
            )
        if not 0 <= self.noise_prob <= 1:
            raise CorpusError(f"noise_prob must be between 0 and 1, got {self.noise_prob}")
        if len(self.snr_db) != 2 or self.snr_db[0] > self.snr_db[1]:
            raise CorpusError(f"snr_db must be (low, high) in dB, got {self.snr_db}")
        if len(self.edge_silence) != 2 or not 0 <= self.edge_silence[0] <= self.edge_silence[1] <= 5:
            raise CorpusError(f"edge_silence must be (low, high) seconds within 0-5, got {self.edge_silence}")

    def size(self, subset: str) -> int:
        """Utterances asked for in `subset`."""
        return {"train": self.train_utterances, "dev": self.dev_utterances, "test": self.test_utterances}[subset]


@dataclass(frozen=True)
class PlannedUtterance:
    """One utterance to make: `noise` is a color or None (then `snr_db` is inf), `snr_db` in dB,
    `noise_seed` seeds the noise samples; `lead` and `tail` are the seconds of silence added
    before and after the speech."""

    id: str
    spoken: str
    transcript: str
    noise: str | None
    snr_db: float
    noise_seed: int
    lead: float = 0.0
    tail: float = 0.0


@dataclass(frozen=True)
class Chapter:
    """One chapter: one speaker reading consecutive sentences (one engine process for festival)."""

    subset: str
    speaker: Speaker
    id: int
    utterances: tuple[PlannedUtterance, ...]

    def folder(self, root: Path) -> Path:
        return root / self.subset / str(self.speaker.id) / str(self.id)

    @property
    def transcript_name(self) -> str:
        return f"{self.speaker.id}-{self.id}.trans.txt"


def _talker_kind(voice: Voice) -> str:
    return "espeak" if voice.engine == "espeak" else "recorded"


def assign_voices(config: CorpusConfig) -> dict[str, list[Voice]]:
    """The voices of `config.engines`, split over the subsets by talker: no talker is in two subsets.

    Seeded by `config.seed` alone among the sizes: the same engines give the same split.
    """
    talkers: dict[str, dict[str, list[Voice]]] = defaultdict(lambda: defaultdict(list))
    for voice in VOICES:
        if voice.engine in config.engines:
            talkers[_talker_kind(voice)][voice.talker].append(voice)
    voices: dict[str, list[Voice]] = {subset: [] for subset in SUBSETS}
    for kind in sorted(talkers):
        names = sorted(talkers[kind])
        random.Random(f"{config.seed}:voices:{kind}").shuffle(names)
        held_out = max(1, round(config.held_out_voice_fraction * len(names))) if len(names) >= 3 else 0
        shares = {"test": names[:held_out], "dev": names[held_out : 2 * held_out], "train": names[2 * held_out :]}
        for subset, share in shares.items():
            voices[subset].extend(voice for name in share for voice in talkers[kind][name])
    return voices


def partition_sentences(sentences: Sequence[Sentence], config: CorpusConfig) -> dict[str, list[Sentence]]:
    """A seeded shuffle of `sentences` cut into test, dev and train, in that order, of the asked sizes."""
    needed = sum(config.size(subset) for subset in SUBSETS)
    if needed > len(sentences):
        within = f" within a vocabulary of {config.vocabulary} words" if config.vocabulary else ""
        raise CorpusError(
            f"{needed} utterances asked for, but the texts {', '.join(config.texts)} "
            f"give only {len(sentences)} usable sentences{within}"
        )
    order = list(range(len(sentences)))
    random.Random(f"{config.seed}:sentences").shuffle(order)
    parts: dict[str, list[Sentence]] = {}
    start = 0
    for subset in ("test", "dev", "train"):
        parts[subset] = [sentences[i] for i in order[start : start + config.size(subset)]]
        start += config.size(subset)
    return parts


def _speakers(voices: Sequence[Voice], config: CorpusConfig) -> list[Speaker]:
    """Every voice x rate x pitch; the id follows from the voice's place in `VOICES`, so it is stable."""
    combos = [(rate, pitch) for rate in config.rates for pitch in config.pitches]
    return [
        Speaker(FIRST_SPEAKER_ID + VOICES.index(voice) * len(combos) + number, voice, rate, pitch)
        for voice in voices
        for number, (rate, pitch) in enumerate(combos)
    ]


def _plan_utterance(config: CorpusConfig, utterance_id: str, sentence: Sentence) -> PlannedUtterance:
    rng = random.Random(f"{config.seed}:noise:{utterance_id}")
    noisy = rng.random() < config.noise_prob
    return PlannedUtterance(
        id=utterance_id,
        spoken=sentence.spoken,
        transcript=sentence.transcript,
        noise=rng.choice(NOISE_COLORS) if noisy else None,
        snr_db=round(rng.uniform(*config.snr_db), 1) if noisy else math.inf,
        noise_seed=rng.getrandbits(63),
        lead=round(rng.uniform(*config.edge_silence), 3),
        tail=round(rng.uniform(*config.edge_silence), 3),
    )


def plan_corpus(config: CorpusConfig, sentences: Sequence[Sentence]) -> list[Chapter]:
    """Every chapter to synthesise, decided by `config` (and its seed) and `sentences` alone.

    Chapters go round the engines in turn; within an engine, through its speakers in a
    seeded order, so that a subset hears as many voices as its size allows.
    """
    voices = assign_voices(config)
    parts = partition_sentences(sentences, config)
    chapters = []
    for index, subset in enumerate(SUBSETS):
        texts = parts[subset]
        if not texts:
            continue
        if not voices[subset]:
            raise CorpusError(f"no voice of {', '.join(config.engines)} is left for {subset}; add an engine")
        by_engine: dict[str, list[Speaker]] = defaultdict(list)
        for speaker in _speakers(voices[subset], config):
            by_engine[speaker.voice.engine].append(speaker)
        engines = [engine for engine in ENGINES if engine in by_engine]
        for engine in engines:
            random.Random(f"{config.seed}:speakers:{subset}:{engine}").shuffle(by_engine[engine])
        for number, start in enumerate(range(0, len(texts), config.chapter_utterances)):
            engine_speakers = by_engine[engines[number % len(engines)]]
            speaker = engine_speakers[(number // len(engines)) % len(engine_speakers)]
            chapter_id = (index + 1) * CHAPTERS_PER_SUBSET + number
            chunk = texts[start : start + config.chapter_utterances]
            utterances = tuple(
                _plan_utterance(config, f"{speaker.id}-{chapter_id}-{n:04d}", sentence)
                for n, sentence in enumerate(chunk)
            )
            chapters.append(Chapter(subset, speaker, chapter_id, utterances))
    return chapters


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
