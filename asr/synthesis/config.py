"""What a synthetic corpus is made of (`CorpusConfig`), checked before anything is planned; light
enough for the command line to read its defaults without loading the audio stack."""

from __future__ import annotations

import math
from dataclasses import dataclass

from asr.errors import UserError
from asr.synthesis.languages import LANGUAGES
from asr.synthesis.sentences import SOURCE_LANGUAGES, SOURCES, sources_in
from asr.synthesis.voices import ENGINES

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
    at least one of each kind that has three or more; a kind of two talkers in a corpus without
    training utterances (a held-out engine's dev and test voices) gives one to each.

    `unheard_engines` leaves out every voice whose talker a voice of those engines shares
    (flite's slt is festival's HTS slt): the corpus of an engine held out from a model trained
    on those engines then holds no talker the model heard.

    `language` other than English ("de", "es", "zh": `asr.synthesis.languages`) is spoken by
    espeak-ng's voices of that language, reading `texts` in it (`fortunes-de` ...).

    `vocabulary` > 0 keeps only the sentences made of that many most frequent words of
    the texts (characters in a language written without spaces; a closed vocabulary, as in
    WSJ's 5k task); 0 keeps every sentence.
    Each utterance gets `edge_silence` (low, high) seconds of silence before and after
    its speech, drawn uniformly: engines start on the first phoneme, recordings seldom do,
    and a model that never heard a silent start is thrown by one.
    """

    train_utterances: int = 3000
    dev_utterances: int = 200
    test_utterances: int = 300
    chapter_utterances: int = 20
    engines: tuple[str, ...] = ENGINES
    unheard_engines: tuple[str, ...] = ()
    texts: tuple[str, ...] = sources_in("en")
    vocabulary: int = 0
    rates: tuple[float, ...] = (0.85, 1.0, 1.15)
    pitches: tuple[float, ...] = (-2.0, 0.0, 2.0)
    held_out_voice_fraction: float = 0.1
    noise_prob: float = 0.0
    snr_db: tuple[float, float] = (5.0, 30.0)
    edge_silence: tuple[float, float] = (0.05, 0.4)
    seed: int = 0
    language: str = "en"

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
        unknown = [e for e in self.unheard_engines if e not in ENGINES]
        if unknown:
            raise CorpusError(f"unheard_engines must be some of {', '.join(ENGINES)}; got {', '.join(unknown)}")
        if set(self.unheard_engines) & set(self.engines):
            raise CorpusError(
                f"an engine cannot be in both engines and unheard_engines; got {', '.join(self.unheard_engines)}"
            )
        unknown = [t for t in self.texts if t not in SOURCES]
        if not self.texts or unknown:
            raise CorpusError(f"texts must be some of {', '.join(SOURCES)}; got {', '.join(self.texts) or 'none'}")
        if self.language != "en" and self.language not in LANGUAGES:
            raise CorpusError(f"language must be en or one of {', '.join(LANGUAGES)}, got {self.language!r}")
        if self.language != "en" and (self.engines != ("espeak",) or self.unheard_engines):
            raise CorpusError(f"language {self.language}: only espeak speaks it; set engines to espeak alone")
        foreign = [t for t in self.texts if SOURCE_LANGUAGES[t] != self.language]
        if foreign:
            spoken = ", ".join(sources_in(self.language))
            raise CorpusError(f"texts {', '.join(foreign)} are not in language {self.language}; use {spoken}")
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
