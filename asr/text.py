"""Text normalisation and the character vocabulary.

One `normalize()` serves training targets, references and hypotheses alike, so
that WER compares like with like. Its output alphabet is LibriSpeech's: upper-case
letters A-Z, the apostrophe and single spaces. `spell_numbers()` writes amounts, years
and other numbers as English words first, where a corpus asks for it (`asr prepare
--expand-numbers`) and for the synthetic corpus's sentences.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from asr.atomic import atomic_write_text
from asr.errors import UserError

ALPHABET: tuple[str, ...] = (" ", "'", *string.ascii_uppercase)
"""Every character `normalize()` can output."""

BLANK = "<blank>"
PAD = "<pad>"
SOS = "<sos>"
EOS = "<eos>"
SPECIALS: tuple[str, ...] = (BLANK, PAD, SOS, EOS)
SPACE_NAME = "<space>"
"""How the space character is written in `tokens.txt` (a bare space is invisible)."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_DROPPED = re.compile(r"\.")  # "U.S.A." -> "USA", "end." -> "END"
_NOT_IN_ALPHABET = re.compile(r"[^A-Z' ]+")
_LONE_APOSTROPHES = re.compile(r"(?<![A-Z])'+(?![A-Z])")


def normalize(text: str) -> str:
    """Map free text onto the alphabet: upper case, A-Z, apostrophe, single spaces.

    Accents are stripped ("café" -> "CAFE"), typographic apostrophes become "'",
    periods are dropped, every other symbol (digits included) separates words, and
    apostrophes that stand alone (quotation marks) are removed.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    upper = letters.translate(_APOSTROPHES).upper()
    spaced = _NOT_IN_ALPHABET.sub(" ", _DROPPED.sub("", upper))
    words = (_LONE_APOSTROPHES.sub("", word) for word in spaced.split())
    return " ".join(word for word in words if word)


@cache
def dropped_kind(character: str) -> str | None:
    """The kind of `character` ("digits", "letters" outside A-Z, "symbols") when `normalize()` makes it a
    word break, else None (spaces and punctuation break words by design)."""
    if character.isdigit():
        kind = "digits"
    elif character.isalpha():
        kind = "letters"
    elif unicodedata.category(character).startswith("S") or character in "&%@#":  # signs read as words
        kind = "symbols"
    else:
        return None
    return kind if normalize(f"A{character}A") == "A A" else None


class VocabularyError(UserError):
    """A tokens file that cannot be read, or text the vocabulary cannot encode."""


@dataclass(frozen=True)
class Vocabulary:
    """Characters and special tokens, each with an integer id (its position).

    The special tokens come first: `<blank>` (CTC blank, id 0), `<pad>` (padding of
    target sequences), `<sos>` and `<eos>` (start and end of a sentence).
    """

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.tokens[: len(SPECIALS)] != SPECIALS:
            raise VocabularyError(f"a vocabulary must start with {', '.join(SPECIALS)}; got {self.tokens[:4]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise VocabularyError("a vocabulary must not repeat a token")
        object.__setattr__(self, "_ids", {token: i for i, token in enumerate(self.tokens)})

    @classmethod
    def default(cls) -> Vocabulary:
        """The special tokens followed by `ALPHABET`: covers all `normalize()` output."""
        return cls(SPECIALS + ALPHABET)

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def pad_id(self) -> int:
        return 1

    @property
    def sos_id(self) -> int:
        return 2

    @property
    def eos_id(self) -> int:
        return 3

    @property
    def space_id(self) -> int | None:
        """The id of the space between words (None in a vocabulary without one)."""
        return self._ids.get(" ")  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of `normalize(text)`, without sos/eos."""
        ids = self._ids  # type: ignore[attr-defined]
        normalized = normalize(text)
        missing = sorted({ch for ch in normalized if ch not in ids})
        if missing:
            raise VocabularyError(f"characters {missing} of {normalized!r} are not in the vocabulary")
        return [ids[ch] for ch in normalized]

    def decode(self, ids: Sequence[int] | Iterable[int]) -> str:
        """Text of `ids`; special tokens are skipped, decoding stops at `<eos>`."""
        chars = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i >= len(SPECIALS):
                chars.append(self.tokens[i])
        return "".join(chars)

    def save(self, path: str | Path) -> None:
        """Write one token per line in id order; the space is written as `<space>`."""
        lines = [SPACE_NAME if token == " " else token for token in self.tokens]
        atomic_write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a file written by `save`."""
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise VocabularyError(f"{path}: cannot read the tokens file ({error.strerror})") from None
        except UnicodeDecodeError:
            raise VocabularyError(f"{path}: not a tokens file (not UTF-8 text)") from None
        tokens = tuple(" " if line == SPACE_NAME else line for line in lines if line != "")
        try:
            return cls(tokens)
        except VocabularyError as error:
            raise VocabularyError(f"{path}: {error}") from None


# A number stands alone: not glued to letters, digits, times (3:30), paths, ranges or signs.
_ALONE_BEFORE = r"(?<![\w:/.,\-+])"
_ALONE_AFTER = r"(?![\w:/\-+]|[.,]\d)"
_CURRENCY = re.compile(_ALONE_BEFORE + r"([$\u00a3\u20ac])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d\d))?" + _ALONE_AFTER)
_CURRENCY_NAMES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "\u00a3": ("pound", "pounds", "penny", "pence"),
    "\u20ac": ("euro", "euros", "cent", "cents"),
}
_PERCENT = re.compile(_ALONE_BEFORE + r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(_ALONE_BEFORE + r"(\d+)(st|nd|rd|th)\b")
_DECADE = re.compile(_ALONE_BEFORE + r"((?:1[1-9]|20)\d0)'?s\b")
_YEAR_CUE = r"(?:in|of|since|until|till|by|from|to|during|before|after|circa|around|year|summer|winter|spring|autumn)"
_YEAR_AFTER_CUE = re.compile(rf"\b({_YEAR_CUE}\s)((?:1[1-9]|20)\d\d)" + _ALONE_AFTER, re.IGNORECASE)
_YEAR_BEFORE_ERA = re.compile(_ALONE_BEFORE + r"(\d{1,4})(?=\s?(?:BC|AD|B\.C\.|A\.D\.)(?!\w))")
_DECIMAL = re.compile(_ALONE_BEFORE + r"(\d+\.\d+)" + _ALONE_AFTER)
_CARDINAL = re.compile(_ALONE_BEFORE + r"(\d{1,3}(?:,\d{3})+|\d+)" + _ALONE_AFTER)
_ERAS = re.compile(r"\b(?:B\.C\.|A\.D\.|BC|AD)(?!\w)")


def _words(number: str, to: str = "cardinal") -> str:
    """num2words without its commas ("one thousand, two hundred" reads as two phrases)."""
    from num2words import num2words  # here: only spelling numbers needs num2words, not the CLI or inference

    return num2words(number if to == "cardinal" and "." in number else int(number), to=to).replace(",", "")


def _money(match: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCY_NAMES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    spoken = f"{_words(str(whole))} {one if whole == 1 else many}"
    if match.group(3) and int(match.group(3)):
        fraction = int(match.group(3))
        spoken += f" and {_words(str(fraction))} {cent if fraction == 1 else cents}"
    return spoken


def _plural(words: str) -> str:
    """ "nineteen ninety" -> "nineteen nineties"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def spell_numbers(text: str) -> str:
    """Spell out amounts, percentages, ordinals, decades, years and plain numbers.

    Years (1100-2099) are read as years ("nineteen eighty-four") after words such as
    "in", "since" or "by", or before BC/AD; other numbers as cardinals. Numbers glued
    to letters or other signs ("3D", "3:30", "1/2", "-5") are left as digits, which
    makes `spoken_form()` drop the sentence.
    """
    text = _CURRENCY.sub(_money, text)
    text = _PERCENT.sub(lambda m: f"{_words(m.group(1))} percent", text)
    text = _ORDINAL.sub(lambda m: _words(m.group(1), to="ordinal"), text)
    text = _DECADE.sub(lambda m: _plural(_words(m.group(1), to="year")), text)
    text = _YEAR_AFTER_CUE.sub(lambda m: m.group(1) + _words(m.group(2), to="year"), text)
    text = _YEAR_BEFORE_ERA.sub(lambda m: _words(m.group(1), to="year"), text)
    text = _ERAS.sub(lambda m: "before Christ" if m.group(0).startswith("B") else "anno Domini", text)
    text = _DECIMAL.sub(lambda m: _words(m.group(1)), text)
    return _CARDINAL.sub(lambda m: _words(m.group(1).replace(",", "")), text)
