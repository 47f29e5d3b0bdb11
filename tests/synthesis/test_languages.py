"""Synthetic speech in German, Spanish and Mandarin: what espeak-ng reads, from which texts, by
which voices, and the transcripts a model of that language trains on."""

import json
import shutil
from pathlib import Path

import pytest

from asr.synthesis.config import CorpusConfig, CorpusError
from asr.synthesis.corpus import synthesize_corpus
from asr.synthesis.languages import LANGUAGES, TextSourceError, read_fortunes, split_sentences, spoken_form
from asr.synthesis.plan import assign_voices
from asr.synthesis.sentences import closed_vocabulary, load_sentences
from asr.synthesis.voices import VOICES
from asr.text import normalize

GERMAN, SPANISH, MANDARIN = LANGUAGES["de"], LANGUAGES["es"], LANGUAGES["zh"]


@pytest.mark.parametrize(
    ("raw", "language", "expected"),
    [
        ("Die Straße ist „größer“ als gedacht", GERMAN, "Die Straße ist größer als gedacht."),
        ("¿Qué tal estás, señor García?", SPANISH, "¿Qué tal estás, señor García?"),
        ("兰叶春葳蕤，桂华秋皎洁。", MANDARIN, "兰叶春葳蕤，桂华秋皎洁。"),
        ("Er kam um 3 Uhr nach Hause.", GERMAN, None),  # digits: read differently than written
        ("Die NASA fliegt wieder zum Mond.", GERMAN, None),  # an acronym: spelt or read as a word?
        ("Das ist z.B. ein schönes Beispiel hier.", GERMAN, None),  # a dotted abbreviation
        ("Debian 是一个自由的操作系统。", MANDARIN, None),  # Latin letters in Chinese text
        ("Zu kurz.", GERMAN, None),
        ("太短。", MANDARIN, None),
    ],
)
def test_a_sentence_is_kept_only_when_espeak_reads_what_its_transcript_says(raw, language, expected) -> None:
    assert spoken_form(raw, language) == expected


def test_chinese_text_is_cut_at_its_own_sentence_ends_and_its_transcript_has_no_spaces() -> None:
    assert split_sentences("春眠不觉晓，处处闻啼鸟。夜来风雨声！花落知多少？", MANDARIN) == [
        "春眠不觉晓，处处闻啼鸟。",
        "夜来风雨声！",
        "花落知多少？",
    ]
    assert normalize("春眠不觉晓，处处闻啼鸟。", MANDARIN.text) == "春眠不觉晓处处闻啼鸟"


@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_each_language_s_fortunes_give_thousands_of_sentences_in_its_letters(code: str) -> None:
    language = LANGUAGES[code]
    if not (Path("/usr/share/games/fortunes") / language.fortunes[0]).exists():
        pytest.skip(f"needs the Debian package {language.package}")
    sentences = load_sentences([f"fortunes-{code}"])
    assert len(sentences) > 5000 and all(s.language == code for s in sentences)
    characters = set("".join(s.transcript for s in sentences))
    assert {"de": set("äöüß"), "es": set("ñáéíóú"), "zh": set("春花")}[code] <= characters
    assert not any(ch.isdigit() or ch.isupper() for ch in characters)
    assert (" " in characters) == (code != "zh")
    closed = closed_vocabulary(sentences, 1000)
    units = {unit for s in closed for unit in (s.transcript if code == "zh" else s.transcript.split())}
    assert len(units) <= 1000 and len(closed) > 500


def test_a_missing_fortunes_package_names_it(tmp_path: Path) -> None:
    with pytest.raises(TextSourceError, match="need the Debian package fortunes-es .apt-get install fortunes-es"):
        list(read_fortunes(SPANISH, tmp_path))


def test_only_espeak_s_voices_of_the_language_read_it_and_english_ids_stay_as_they_were() -> None:
    config = CorpusConfig(language="de", engines=("espeak",), texts=("fortunes-de",))
    voices = assign_voices(config)
    talkers = {subset: {v.talker for v in found} for subset, found in voices.items()}
    assert all(v.language == "de" and v.name.startswith("de+") for found in voices.values() for v in found)
    assert not (talkers["train"] & talkers["dev"]) and not (talkers["train"] & talkers["test"])
    assert len(talkers["dev"]) >= 1 and len(talkers["test"]) >= 1
    english = [v for v in VOICES if v.language == "en"]
    assert VOICES[: len(english)] == tuple(english)  # speaker ids follow positions: English's are unchanged


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"language": "fr", "engines": ("espeak",)}, "language must be en or one of de, es, zh"),
        ({"language": "de", "engines": ("espeak", "flite"), "texts": ("fortunes-de",)}, "only espeak speaks it"),
        ({"language": "de", "engines": ("espeak",)}, "texts bible, wordnet, fortunes are not in language de"),
        ({"texts": ("fortunes-es",)}, "texts fortunes-es are not in language en; use bible, wordnet, fortunes"),
    ],
)
def test_settings_that_cannot_speak_a_language_are_refused(settings: dict, problem: str) -> None:
    with pytest.raises(CorpusError, match=problem):
        CorpusConfig(**settings)


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None
    or shutil.which("sox") is None
    or not Path("/usr/share/games/fortunes/de").is_dir(),
    reason="needs the Debian packages espeak-ng, sox and fortunes-de",
)
def test_a_small_german_corpus_is_spoken_by_german_voices_with_transcripts_that_keep_their_letters(
    tmp_path: Path,
) -> None:
    config = CorpusConfig(
        language="de", engines=("espeak",), texts=("fortunes-de",), vocabulary=300, train_utterances=4,
        dev_utterances=2, test_utterances=2, chapter_utterances=2, rates=(1.0,), pitches=(0.0,),
    )  # fmt: skip
    synthesize_corpus(tmp_path, config, jobs=2)
    transcripts = [
        line.split(" ", 1)[1] for path in tmp_path.rglob("*.trans.txt") for line in path.read_text().splitlines()
    ]
    assert len(transcripts) == 8 and len(list(tmp_path.rglob("*.flac"))) == 8
    assert all(t == normalize(t, GERMAN.text) and t == t.lower() for t in transcripts)
    speakers = (tmp_path / "SPEAKERS.TXT").read_text()
    assert "espeak de+" in speakers and "en-" not in speakers
    assert json.loads((tmp_path / "synthesis.json").read_text())["language"] == "de"
