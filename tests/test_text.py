from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asr.text import ALPHABET, SPECIALS, Vocabulary, VocabularyError, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello, world!", "HELLO WORLD"),
        ("  several   spaces\tand\nlines ", "SEVERAL SPACES AND LINES"),
        ("don\u2019t stop", "DON'T STOP"),
        ("caf\u00e9 na\u00efve", "CAFE NAIVE"),
        ("U.S.A. is big.", "USA IS BIG"),
        ("twenty-one", "TWENTY ONE"),
        ("' quoted ' words", "QUOTED WORDS"),
        ("'TWAS THE NIGHT", "'TWAS THE NIGHT"),
        ("THE CAT SAT ON THE MAT", "THE CAT SAT ON THE MAT"),
        ("room 101", "ROOM"),
        ("", ""),
    ],
)
def test_normalize_maps_text_onto_the_alphabet(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@given(st.text())
def test_normalize_is_idempotent_and_stays_in_the_alphabet(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert set(once) <= set(ALPHABET)
    assert "  " not in once and once == once.strip()


@given(st.text())
def test_vocabulary_round_trips_normalized_text(text: str) -> None:
    vocab = Vocabulary.default()
    assert vocab.decode(vocab.encode(text)) == normalize(text)


def test_vocabulary_special_tokens_have_fixed_ids() -> None:
    vocab = Vocabulary.default()
    assert [vocab.tokens[i] for i in (vocab.blank_id, vocab.pad_id, vocab.sos_id, vocab.eos_id)] == list(SPECIALS)
    assert len(vocab) == len(SPECIALS) + len(ALPHABET)


def test_decode_skips_specials_and_stops_at_eos() -> None:
    vocab = Vocabulary.default()
    ids = [vocab.sos_id, *vocab.encode("AB"), vocab.blank_id, *vocab.encode("C"), vocab.eos_id, *vocab.encode("D")]
    assert vocab.decode(ids) == "ABC"


def test_vocabulary_saves_and_loads_the_same_tokens(tmp_path: Path) -> None:
    vocab = Vocabulary.default()
    vocab.save(tmp_path / "tokens.txt")
    lines = (tmp_path / "tokens.txt").read_text().splitlines()
    assert lines[:4] == list(SPECIALS) and "<space>" in lines
    assert Vocabulary.load(tmp_path / "tokens.txt") == vocab


def test_encode_names_characters_the_vocabulary_lacks() -> None:
    vocab = Vocabulary((*SPECIALS, " ", "A", "B"))
    with pytest.raises(VocabularyError, match=r"\['C'\]"):
        vocab.encode("a cab")


def test_loading_a_missing_tokens_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="nope.txt: cannot read"):
        Vocabulary.load(tmp_path / "nope.txt")


def test_a_tokens_file_without_the_special_tokens_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "tokens.txt").write_text("A\nB\n")
    with pytest.raises(VocabularyError, match="tokens.txt: a vocabulary must start with"):
        Vocabulary.load(tmp_path / "tokens.txt")
