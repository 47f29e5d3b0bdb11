"""The plan of a synthetic corpus, decided by `CorpusConfig` and its seed before any audio is
made: which talkers go to which subset (no talker in two), which sentences (no sentence in
two), the speakers (voice, rate, pitch), chapters, and each utterance's noise and silences.
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.synthesis.config import CHAPTERS_PER_SUBSET, FIRST_SPEAKER_ID, SUBSETS, CorpusConfig, CorpusError
from asr.synthesis.engines import NOISE_COLORS
from asr.synthesis.sentences import Sentence
from asr.synthesis.voices import ENGINES, VOICES, Speaker, Voice

log = logging.getLogger(__name__)


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
    heard = {voice.talker for voice in VOICES if voice.engine in config.unheard_engines}
    talkers: dict[str, dict[str, list[Voice]]] = defaultdict(lambda: defaultdict(list))
    for voice in VOICES:
        if voice.engine in config.engines and voice.language == config.language and voice.talker not in heard:
            talkers[_talker_kind(voice)][voice.talker].append(voice)
    if not talkers:
        raise CorpusError(
            f"every talker of {', '.join(config.engines)} is heard in {', '.join(config.unheard_engines)}: "
            "no voice is left"
        )
    voices: dict[str, list[Voice]] = {subset: [] for subset in SUBSETS}
    for kind in sorted(talkers):
        names = sorted(talkers[kind])
        random.Random(f"{config.seed}:voices:{kind}").shuffle(names)
        held_out = _held_out_talkers(len(names), config)
        shares = {"test": names[:held_out], "dev": names[held_out : 2 * held_out], "train": names[2 * held_out :]}
        for subset, share in shares.items():
            voices[subset].extend(voice for name in share for voice in talkers[kind][name])
    return voices


def _held_out_talkers(talkers: int, config: CorpusConfig) -> int:
    """How many of a kind's `talkers` dev, and test, each get."""
    if talkers >= 3:
        return max(1, round(config.held_out_voice_fraction * talkers))
    return 1 if talkers == 2 and config.train_utterances == 0 else 0


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
