from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asr.text import (
    ALPHABET,
    ENGLISH,
    SPECIALS,
    UNK,
    UNK_TEXT,
    TextConfig,
    Vocabulary,
    VocabularyError,
    build_vocabulary,
    character_counts,
    dropped_kind,
    normalize,
)


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


UNICODE = TextConfig("unicode")
NO_SPACES = TextConfig("unicode", spaces=False, metric="cer")


@pytest.mark.parametrize(
    ("raw", "config", "expected"),
    [
        ("Die Straße ist GRÖSSER, nicht größer!", UNICODE, "die straße ist grösser nicht größer"),
        ("¿Qué tal? ¡Muy bien, señor!", UNICODE, "qué tal muy bien señor"),
        ("l\u2019homme « est » là", UNICODE, "l'homme est là"),
        ("Cafe\u0301 au lait", UNICODE, "caf\u00e9 au lait"),  # NFC: e + combining acute is é
        ("Room 101, 2 €", UNICODE, "room 101 2"),
        ("Room 101", TextConfig("unicode", digits="drop"), "room"),
        ("今天天气很好。我们 去 公园 吧！", NO_SPACES, "今天天气很好我们去公园吧"),
        ("Привет, мир", UNICODE, "привет мир"),
        ("  Keep, THIS  as\tit is. ", TextConfig("none"), "Keep, THIS as it is."),
        ("Die Straße", ENGLISH, "DIE STRASSE"),
    ],
)
def test_each_normalizer_writes_text_as_its_corpus_needs(raw: str, config: TextConfig, expected: str) -> None:
    assert normalize(raw, config) == expected


@given(st.text(), st.sampled_from([UNICODE, NO_SPACES, TextConfig("unicode", digits="drop"), TextConfig("none")]))
def test_every_normalizer_is_idempotent_and_leaves_single_spaces(text: str, config: TextConfig) -> None:
    once = normalize(text, config)
    assert normalize(once, config) == once
    assert "  " not in once and once == once.strip()
    assert config.spaces or " " not in once


def test_a_german_sentence_with_umlauts_and_sharp_s_round_trips_through_a_vocabulary_drawn_from_transcripts() -> None:
    sentences = ["Süße Grüße aus Köln", "Die Straße ist größer als der Fluß", "Über Äpfel und Öfen"]
    drawn = build_vocabulary(character_counts(sentences, UNICODE), UNICODE)
    assert {"ß", "ü", "ö", "ä"} <= set(drawn.vocab.characters) and drawn.vocab.characters[0] == " "
    for sentence in sentences:
        assert drawn.vocab.decode(drawn.vocab.encode(sentence)) == normalize(sentence, UNICODE)
    assert drawn.vocab.unk_id == len(SPECIALS) and not drawn.rare  # for characters dev and test sets bring


def test_rare_characters_are_refused_with_their_counts_or_spelt_as_unk() -> None:
    counts = character_counts(["aaa bb", "aab é", "ab"], UNICODE)
    with pytest.raises(VocabularyError, match=r"1 characters occur fewer than text\.min_count=2 .*'é' x1"):
        build_vocabulary(counts, TextConfig("unicode", min_count=2))
    drawn = build_vocabulary(counts, TextConfig("unicode", min_count=2, rare="unknown"))
    assert drawn.rare == {"é": 1} and drawn.vocab.tokens[len(SPECIALS)] == UNK
    assert drawn.vocab.decode(drawn.vocab.encode("ab é")) == f"ab {UNK_TEXT}"
    assert "1 occurrences of 1 rare ones" in drawn.summary()


def test_a_drawn_vocabulary_saves_and_loads_with_its_normaliser(tmp_path: Path) -> None:
    vocab = build_vocabulary(character_counts(["你好 世界"], NO_SPACES), NO_SPACES).vocab
    vocab.save(tmp_path / "tokens.txt")
    assert Vocabulary.load(tmp_path / "tokens.txt", NO_SPACES) == vocab
    assert vocab.characters == tuple(sorted("你好世界"))


def test_what_a_normalizer_drops_is_said_by_kind_and_punctuation_is_not() -> None:
    drop_digits = TextConfig("unicode", digits="drop")
    assert [dropped_kind(ch, UNICODE) for ch in "aß1€,. \u200b"] == [
        None,
        None,
        None,
        "symbols",
        None,
        None,
        None,
        "other",
    ]
    assert dropped_kind("1", drop_digits) == "digits" and dropped_kind("²", UNICODE) == "digits"
    assert [dropped_kind(ch) for ch in "Aé1€,"] == [None, None, "digits", "symbols", None]  # english: é is E
    assert dropped_kind("ß") is None and dropped_kind("Ж") == "letters"
    assert all(dropped_kind(ch, TextConfig("none")) is None for ch in "1€,\u200b")


def test_english_settings_that_belong_to_the_unicode_normalizer_are_refused() -> None:
    with pytest.raises(ValueError, match="text.spaces and text.digits are settings of the unicode normaliser"):
        TextConfig("english", spaces=False)
    with pytest.raises(ValueError, match="text.normalizer must be one of english, unicode, none"):
        TextConfig("german")  # type: ignore[arg-type]
