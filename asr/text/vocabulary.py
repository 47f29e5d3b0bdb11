"""The character vocabulary: special tokens, then the characters a model spells, each an id.

An english model's characters are the fixed `ALPHABET`; a model of any other normaliser
spells the characters its training transcripts use (`build_vocabulary`), and rare ones are
refused or spelt as `<unk>`, as its `TextConfig` says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from asr.atomic import atomic_write_text
from asr.errors import UserError
from asr.text.normalizers import ALPHABET, ENGLISH, TextConfig, normalize

BLANK = "<blank>"
PAD = "<pad>"
SOS = "<sos>"
EOS = "<eos>"
SPECIALS: tuple[str, ...] = (BLANK, PAD, SOS, EOS)
UNK = "<unk>"
"""Stands for every character a drawn vocabulary lacks (rare ones where `TextConfig.rare` is
unknown, unseen ones of dev and test transcripts); it follows the specials."""
UNK_TEXT = "\u2047"
"""What `<unk>` decodes to (SentencePiece's choice): one character, unlike any of a transcript."""
SPACE_NAME = "<space>"
"""How the space character is written in `tokens.txt` (a bare space is invisible)."""


class VocabularyError(UserError):
    """A tokens file that cannot be read, or text the vocabulary cannot encode."""


@dataclass(frozen=True)
class Vocabulary:
    """Characters and special tokens, each with an integer id (its position), and the normaliser
    (`text`) that turns a transcript into those characters.

    The special tokens come first: `<blank>` (CTC blank, id 0), `<pad>` (padding of
    target sequences), `<sos>` and `<eos>` (start and end of a sentence); `<unk>` next, if
    the vocabulary has one.
    """

    tokens: tuple[str, ...]
    text: TextConfig = field(default=ENGLISH)

    def __post_init__(self) -> None:
        if self.tokens[: len(SPECIALS)] != SPECIALS:
            raise VocabularyError(f"a vocabulary must start with {', '.join(SPECIALS)}; got {self.tokens[:4]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise VocabularyError("a vocabulary must not repeat a token")
        if UNK in self.tokens[len(SPECIALS) + 1 :]:
            raise VocabularyError(f"{UNK} must follow the special tokens")
        object.__setattr__(self, "_ids", {token: i for i, token in enumerate(self.tokens)})

    @classmethod
    def default(cls) -> Vocabulary:
        """The english normaliser's: the special tokens followed by `ALPHABET`."""
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
    def unk_id(self) -> int | None:
        """The id of `<unk>` (None in a vocabulary without one)."""
        return self._ids.get(UNK)  # type: ignore[attr-defined]

    @property
    def space_id(self) -> int | None:
        """The id of the space between words (None in a vocabulary without one)."""
        return self._ids.get(" ")  # type: ignore[attr-defined]

    @property
    def characters(self) -> tuple[str, ...]:
        """The characters it spells, in id order (no special token, no `<unk>`)."""
        return tuple(token for token in self.tokens[len(SPECIALS) :] if token != UNK)

    def __len__(self) -> int:
        return len(self.tokens)

    def normalize(self, text: str) -> str:
        """`text` as this vocabulary's normaliser writes it (for targets, references and hypotheses)."""
        return normalize(text, self.text)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of `self.normalize(text)`, without sos/eos; characters it lacks
        are `<unk>` if it has one, else a `VocabularyError` names them."""
        ids = self._ids  # type: ignore[attr-defined]
        normalized = self.normalize(text)
        missing = sorted({ch for ch in normalized if ch not in ids})
        if missing and self.unk_id is None:
            raise VocabularyError(f"characters {missing} of {normalized!r} are not in the vocabulary")
        return [ids.get(ch, self.unk_id) for ch in normalized]

    def decode(self, ids: Sequence[int] | Iterable[int]) -> str:
        """Text of `ids`; special tokens are skipped, `<unk>` is `UNK_TEXT`, decoding stops at `<eos>`."""
        chars = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i >= len(SPECIALS):
                chars.append(UNK_TEXT if i == self.unk_id else self.tokens[i])
        return "".join(chars)

    def save(self, path: str | Path) -> None:
        """Write one token per line in id order; the space is written as `<space>`."""
        lines = [SPACE_NAME if token == " " else token for token in self.tokens]
        atomic_write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | Path, text: TextConfig = ENGLISH) -> Vocabulary:
        """Read a file written by `save`; `text`: the normaliser its model was trained with."""
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise VocabularyError(f"{path}: cannot read the tokens file ({error.strerror})") from None
        except UnicodeDecodeError:
            raise VocabularyError(f"{path}: not a tokens file (not UTF-8 text)") from None
        tokens = tuple(" " if line == SPACE_NAME else line for line in lines if line != "")
        try:
            return cls(tokens, text)
        except VocabularyError as error:
            raise VocabularyError(f"{path}: {error}") from None


def character_counts(transcripts: Iterable[str], text: TextConfig) -> Counter[str]:
    """How often each character occurs in `transcripts` once normalised by `text`."""
    counts: Counter[str] = Counter()
    for transcript in transcripts:
        counts.update(normalize(transcript, text))
    return counts


@dataclass(frozen=True)
class DrawnVocabulary:
    """A vocabulary drawn from training transcripts, and the rare characters it left out
    (with their counts), which it spells as `<unk>`."""

    vocab: Vocabulary
    rare: dict[str, int]

    def summary(self) -> str:
        """One line for the training log."""
        line = f"vocabulary: {len(self.vocab.characters)} characters ({self.vocab.text.normalizer} normaliser)"
        if self.rare:
            line += f", {sum(self.rare.values())} occurrences of {len(self.rare)} rare ones spelt {UNK}: "
            line += listed_counts(self.rare)
        return line


def build_vocabulary(counts: Counter[str], text: TextConfig) -> DrawnVocabulary:
    """The vocabulary a model of normaliser `text` spells, from the `character_counts` of its
    training transcripts: the english alphabet as it is; otherwise `<unk>` and every character seen
    at least `text.min_count` times, the space first, then in code point order. Rare characters
    are refused (a `VocabularyError` naming them with their counts) or spelt `<unk>`, as
    `text.rare` says; so are characters of dev and test transcripts that training never saw
    (AISHELL's dev set holds some), which scoring then counts as errors."""
    if text.fixed_alphabet:
        return DrawnVocabulary(replace(Vocabulary.default(), text=text), {})
    if not counts:
        raise VocabularyError("the training transcripts hold no character once normalised")
    rare = {ch: n for ch, n in sorted(counts.items(), key=lambda item: (item[1], item[0])) if n < text.min_count}
    if rare and text.rare == "refuse":
        raise VocabularyError(
            f"{len(rare)} characters occur fewer than text.min_count={text.min_count} times in the training "
            f"transcripts: {listed_counts(rare)}; lower text.min_count, or set text.rare=unknown to spell them {UNK}"
        )
    kept = sorted((ch for ch in counts if ch not in rare), key=lambda ch: (ch != " ", ch))
    return DrawnVocabulary(Vocabulary((*SPECIALS, UNK, *kept), text), rare)


def listed_counts(counts: dict[str, int], shown: int = 10) -> str:
    """`'ß' x3, 'é' x2, ...` for the first `shown` characters of `counts`, and how many more."""
    listed = ", ".join(f"{ch!r} x{n}" for ch, n in list(counts.items())[:shown])
    return listed + (f" and {len(counts) - shown} more" if len(counts) > shown else "")
