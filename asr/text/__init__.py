"""Text: the normalisers (how a transcript becomes what a model spells and scoring compares),
the character vocabulary, and English number spelling.

`normalizers` -> `vocabulary`; `numbers` stands apart (needed only where a corpus asks for it).
"""

from asr.text.normalizers import ALPHABET, ENGLISH, NORMALIZERS, TextConfig, dropped_kind, normalize
from asr.text.numbers import spell_numbers
from asr.text.vocabulary import (
    SPECIALS,
    UNK,
    UNK_TEXT,
    DrawnVocabulary,
    Vocabulary,
    VocabularyError,
    build_vocabulary,
    character_counts,
    listed_counts,
)

__all__ = [
    "ALPHABET",
    "ENGLISH",
    "NORMALIZERS",
    "SPECIALS",
    "UNK",
    "UNK_TEXT",
    "DrawnVocabulary",
    "TextConfig",
    "Vocabulary",
    "VocabularyError",
    "build_vocabulary",
    "character_counts",
    "dropped_kind",
    "listed_counts",
    "normalize",
    "spell_numbers",
]
