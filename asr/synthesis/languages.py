"""The languages a synthetic corpus can be spoken in besides English: espeak-ng's voices for
each, a Debian package of free text in it, and the normaliser its models train with.

| language | espeak-ng voices | text (Debian package) | normaliser |
|---|---|---|---|
| `de` German | de | fortunes-de (Sprüche, Witze, Zitate ...) | unicode |
| `es` Spanish | es, es-419 | fortunes-es (citas, refranes ...) | unicode |
| `zh` Mandarin | cmn-latn-pinyin | fortunes-zh (Tang and Song poems, Debian's texts) | unicode, no spaces, CER |

(espeak-ng 1.51's `cmn` voice reads the pinyin of Chinese characters as English words;
`cmn-latn-pinyin` reads them in Mandarin.)

English keeps its own sources and rules (`asr.synthesis.sentences`). A sentence is kept only
when an engine can read it unambiguously: no digits, symbols, URLs, acronyms or letters of
another script, so that what is spoken is what the transcript says.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from asr.errors import UserError
from asr.text import TextConfig

FORTUNES_DIR = Path("/usr/share/games/fortunes")


class TextSourceError(UserError):
    """A text source that is unknown or whose Debian package is not installed."""


@dataclass(frozen=True)
class Language:
    """What synthesising speech in one language needs. `letters`: a pattern of one character that
    may stand in a sentence (letters of its script, the punctuation an engine reads silently);
    `units` is "words" or "characters", what MIN_UNITS..MAX_UNITS count."""

    code: str
    name: str
    espeak_voices: tuple[str, ...]
    package: str
    fortunes: tuple[str, ...]
    """Files (or folders of files) of the package under /usr/share/games/fortunes."""
    text: TextConfig
    letters: str
    units: str = "words"


LANGUAGES: dict[str, Language] = {
    "de": Language(
        "de", "German", ("de",), "fortunes-de", ("de",), TextConfig("unicode"),
        r"[A-Za-zÄÖÜäöüß' .,;:?!]",
    ),
    "es": Language(
        "es", "Spanish", ("es", "es-419"), "fortunes-es", ("es",), TextConfig("unicode"),
        r"[A-Za-zÁÉÍÓÚÜÑáéíóúüñ' .,;:?!¿¡]",
    ),
    "zh": Language(
        "zh", "Mandarin", ("cmn-latn-pinyin",), "fortunes-zh", ("chinese", "tang300", "song100"),
        TextConfig("unicode", spaces=False, metric="cer"), r"[\u4e00-\u9fff，、；：。！？]", units="characters",
    ),
}  # fmt: skip
"""Language code -> what it needs; English ("en") is the synthetic corpus's own and not listed."""

MIN_UNITS = {"words": 4, "characters": 5}
MAX_UNITS = {"words": 30, "characters": 40}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # fortunes-zh colours its attributions
_TYPOGRAPHY = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u201e": '"', "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
     "\u2014": ", ", "\u2013": ", ", "\u2026": ", ", "\u00a0": " "}
)  # fmt: skip
_SENTENCE_END = re.compile(r"(?<=[.?!])[\"')\]]*\s+(?=[\"'(\[¿¡]*[A-ZÄÖÜÁÉÍÓÚÑ])")
_CJK_SENTENCE_END = re.compile(r"(?<=[。！？；])")
_ACRONYM = re.compile(r"\b[A-ZÄÖÜÁÉÍÓÚÑ]{2,}\b")
_DOTTED = re.compile(r"\w\.\w|\b\w{1,3}\.(?=\s+[a-zäöüáéíóúñ])")  # z.B., "Dr. med", "usw. und"
_QUOTES_AND_BRACKETS = re.compile(r"[\"()\[\]«»]")
_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_PUNCTUATION_RUN = re.compile(r"\s*([,;:])(?:\s*[,;:])*\s*")
_SPACE_BEFORE_END = re.compile(r"\s+([.?!])")


def read_fortunes(language: Language, folder: Path = FORTUNES_DIR) -> Iterator[str]:
    """The passages of `language`'s fortune files (its package's, not the offensive ones), without
    "-- Author" lines, titles or authors of poems; lines of a CJK passage are joined without a space."""
    files = []
    for name in language.fortunes:
        path = folder / name
        found = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        files += [p for p in found if not p.is_symlink() and p.suffix not in (".dat", ".u8")]
    if not files:
        raise TextSourceError(
            f"{language.name} sentences need the Debian package {language.package} "
            f"(apt-get install {language.package}); {folder} holds none of its files"
        )
    joiner = "" if language.units == "characters" else " "
    for path in files:
        for entry in _ANSI.sub("", path.read_text(encoding="utf-8", errors="replace")).split("\n%\n"):
            lines = []
            for line in entry.splitlines():
                if line.strip().startswith("--"):
                    break
                if "《" not in line and "作者" not in line:
                    lines.append(line.strip())
            yield joiner.join(lines)


def split_sentences(passage: str, language: Language) -> list[str]:
    """`passage` cut at its sentence ends (。！？； in CJK text)."""
    if language.units == "characters":
        return [part.strip() for part in _CJK_SENTENCE_END.split(passage) if part.strip()]
    return [part.strip() for part in _SENTENCE_END.split(" ".join(passage.split())) if part.strip()]


def spoken_form(raw: str, language: Language) -> str | None:
    """What espeak-ng should read for `raw` in `language`, or None when it cannot be read
    unambiguously (a character outside `language.letters`, an acronym, a dotted abbreviation) or
    holds fewer than `MIN_UNITS` or more than `MAX_UNITS` words (characters in CJK text)."""
    text = unicodedata.normalize("NFC", raw).translate(_TYPOGRAPHY)
    text = _STRAY_APOSTROPHE.sub(" ", _QUOTES_AND_BRACKETS.sub(" ", text)).replace(" - ", ", ")
    text = " ".join(text.split())
    if language.units == "characters":
        text = text.replace(" ", "")
    if not text or not re.fullmatch(f"(?:{language.letters})+", text):
        return None
    if _ACRONYM.search(text) or _DOTTED.search(text):
        return None
    text = _SPACE_BEFORE_END.sub(r"\1", _PUNCTUATION_RUN.sub(lambda m: m.group(1) + " ", text)).strip(" ,;:")
    text = text.lstrip(".?!,;:，、；：。！？")
    transcript = text.translate(str.maketrans("", "", ".,;:?!¿¡，、；：。！？")).split()
    units = len(transcript) if language.units == "words" else len("".join(transcript))
    if not MIN_UNITS[language.units] <= units <= MAX_UNITS[language.units]:
        return None
    if language.units == "words" and text[-1] not in ".?!":
        text += "."
    return text
