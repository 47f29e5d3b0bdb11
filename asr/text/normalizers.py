"""Normalisers: how a transcript becomes the characters a model spells and scoring compares.

One normaliser per model (`TextConfig`, saved in its directory) serves training targets,
references and hypotheses alike, so that error rates compare like with like:

- `english` (the default, and what every model saved before had): LibriSpeech's alphabet,
  upper-case A-Z, the apostrophe and single spaces; accents stripped ("café" -> "CAFE"),
  every other character a word break.
- `unicode`: any script. NFC, lower case, letters and combining marks kept, digits kept or
  made word breaks as the corpus says, punctuation, symbols and the rest word breaks; a
  script written without spaces (Mandarin, Japanese) loses them all (`spaces: false`).
- `none`: the transcripts as they are, save NFC and runs of white space made one space.

`dropped_kind` says of a character whether a normaliser loses it and as what, so that no
letter is lost without being counted (punctuation and white space break words by design).
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Literal

ALPHABET: tuple[str, ...] = (" ", "'", *string.ascii_uppercase)
"""Every character the english normaliser can output."""

NORMALIZERS = ("english", "unicode", "none")

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_DROPPED = re.compile(r"\.")  # "U.S.A." -> "USA", "end." -> "END"
_NOT_IN_ALPHABET = re.compile(r"[^A-Z' ]+")
_LONE_APOSTROPHES = re.compile(r"(?<![A-Z])'+(?![A-Z])")
_LONE_APOSTROPHES_ANY_SCRIPT = re.compile(r"(?<!\w)'+|'+(?!\w)")


@dataclass(frozen=True)
class TextConfig:
    """The normaliser of a model and how its vocabulary is drawn from the training transcripts;
    saved in the model directory (config.yaml's `text`), so that evaluation and transcription
    treat references and hypotheses as training did. A directory without it is `english`."""

    normalizer: Literal["english", "unicode", "none"] = "english"
    digits: Literal["keep", "drop"] = "keep"
    """unicode: digits are characters to spell ("keep") or word breaks, counted ("drop").
    english always drops them (`asr prepare --expand-numbers` spells numbers as words first)."""
    spaces: bool = True
    """False for scripts written without spaces between words (Mandarin, Japanese, Thai): every
    space is removed, and `metric` should be cer."""
    min_count: int = 1
    """A character seen fewer times in the training transcripts is rare (unicode and none; the
    english alphabet is fixed)."""
    rare: Literal["refuse", "unknown"] = "refuse"
    """What training does with rare characters: refuse to start, naming them with their counts,
    or spell them as one `<unk>` token (decoded as "\u2047")."""
    metric: Literal["wer", "cer"] = "wer"
    """The primary error rate: cer where words are not written apart (both are reported)."""

    def __post_init__(self) -> None:
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"text.normalizer must be one of {', '.join(NORMALIZERS)}, got {self.normalizer!r}")
        if self.normalizer == "english" and (not self.spaces or self.digits != "keep"):
            raise ValueError("text.spaces and text.digits are settings of the unicode normaliser; english has its own")
        if self.min_count < 1:
            raise ValueError(f"text.min_count must be at least 1, got {self.min_count}")

    @property
    def fixed_alphabet(self) -> bool:
        """Whether the vocabulary is a fixed alphabet (english) rather than drawn from transcripts."""
        return self.normalizer == "english"


ENGLISH = TextConfig()


def normalize(text: str, config: TextConfig = ENGLISH) -> str:
    """`text` as `config`'s normaliser writes it: single spaces between words (none where
    `config.spaces` is false), nothing at either end."""
    if config.normalizer == "english":
        return _english(text)
    if config.normalizer == "none":
        return " ".join(unicodedata.normalize("NFC", text).split())
    return _unicode(text, config.digits == "keep", config.spaces)


def _english(text: str) -> str:
    """Upper case, A-Z, apostrophe, single spaces. Accents are stripped ("café" -> "CAFE"),
    typographic apostrophes become "'", periods are dropped, every other symbol (digits
    included) separates words, and apostrophes that stand alone (quotation marks) are removed."""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    upper = letters.translate(_APOSTROPHES).upper()
    spaced = _NOT_IN_ALPHABET.sub(" ", _DROPPED.sub("", upper))
    words = (_LONE_APOSTROPHES.sub("", word) for word in spaced.split())
    return " ".join(word for word in words if word)


def _unicode(text: str, digits: bool, spaces: bool) -> str:
    """NFC, lower case ("Straße" -> "straße": not case folding, which writes ß as ss); letters,
    combining marks, apostrophes within words and, if `digits`, decimal digits kept; the rest
    separates words."""
    lowered = unicodedata.normalize("NFC", text.translate(_APOSTROPHES).lower())
    kept = "".join(ch if _kept(ch, digits) else " " for ch in lowered)
    words = (_LONE_APOSTROPHES_ANY_SCRIPT.sub("", word) for word in kept.split())
    return (" " if spaces else "").join(word for word in words if word)


@cache
def _kept(character: str, digits: bool) -> bool:
    category = unicodedata.category(character)
    return category[0] in "LM" or character == "'" or (digits and category == "Nd")


@cache
def dropped_kind(character: str, config: TextConfig = ENGLISH) -> str | None:
    """The kind of `character` ("digits", "letters" the normaliser cannot spell, "symbols",
    "other" characters) when `config`'s normaliser loses it, else None: kept, or punctuation
    and white space, which break words by design."""
    if config.normalizer == "none":
        return None
    category = unicodedata.category(character)
    if character.isdigit():
        kind = "digits"
    elif character.isalpha():
        kind = "letters"
    elif category.startswith("S") or character in "&%@#":  # signs read as words
        kind = "symbols"
    elif category[0] in "PZ":
        return None
    else:
        kind = "other"
    if config.normalizer == "english":
        return kind if kind != "other" and _english(f"A{character}A") == "A A" else None
    return None if _kept(character, config.digits == "keep") else kind
