"""The response formats of OpenAI's transcription API, from a transcript."""

from __future__ import annotations

import pytest

from asr.serving.formats import RESPONSE_FORMATS, compression_ratio, model_language, render, verbose_json
from asr.text import SPECIALS, TextConfig, Vocabulary
from asr.transcribe import Segment, Transcript, Word
from asr.writers import to_srt, to_vtt

TRANSCRIPT = Transcript(
    "speech.wav",
    5.0,
    (
        Segment(0.5, 2.0, "hello there", -0.3, (Word("hello", 0.5, 1.0), Word("there", 1.1, 2.0))),
        Segment(3.0, 4.5, "again", -0.2, (Word("again", 3.0, 4.5),)),
    ),
)


def test_json_holds_the_text_alone_and_text_ends_in_a_newline() -> None:
    assert render(TRANSCRIPT, "json", "english") == {"text": "hello there again"}
    assert render(TRANSCRIPT, "text", "english") == "hello there again\n"


def test_srt_and_vtt_are_the_writers_of_asr_transcribe() -> None:
    assert render(TRANSCRIPT, "srt", "english") == to_srt(TRANSCRIPT)
    assert render(TRANSCRIPT, "vtt", "english") == to_vtt(TRANSCRIPT)


def test_verbose_json_gives_numbered_segments_by_default_and_words_only_when_asked() -> None:
    record = verbose_json(TRANSCRIPT, "english")
    assert {k: record[k] for k in ("task", "language", "duration", "text")} == {
        "task": "transcribe",
        "language": "english",
        "duration": 5.0,
        "text": "hello there again",
    }
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in record["segments"]] == [
        (0, 0.5, 2.0, "hello there"),
        (1, 3.0, 4.5, "again"),
    ]
    assert record["segments"][0]["seek"] == 50 and record["segments"][0]["avg_logprob"] == -0.3
    assert "words" not in record
    words = verbose_json(TRANSCRIPT, "english", ("word",))
    assert "segments" not in words
    assert words["words"] == [
        {"word": "hello", "start": 0.5, "end": 1.0},
        {"word": "there", "start": 1.1, "end": 2.0},
        {"word": "again", "start": 3.0, "end": 4.5},
    ]
    both = verbose_json(TRANSCRIPT, "english", ("segment", "word"))
    assert both["segments"] == record["segments"] and both["words"] == words["words"]


def test_every_response_format_renders_and_an_unknown_one_is_refused() -> None:
    for response_format in RESPONSE_FORMATS:
        assert render(TRANSCRIPT, response_format, "english")
    with pytest.raises(ValueError, match="xml"):
        render(TRANSCRIPT, "xml", "english")


def test_a_repeated_text_compresses_better_than_a_varied_one() -> None:
    assert compression_ratio("the " * 50) > compression_ratio("a quick brown fox jumps over the lazy dog") > 0
    assert compression_ratio("") == 0.0


def test_the_language_is_english_only_for_a_model_with_the_english_normaliser() -> None:
    assert model_language(Vocabulary.default()) == "english"
    unicode = Vocabulary((*SPECIALS, "a", "ä", " "), TextConfig(normalizer="unicode"))
    assert model_language(unicode) == "unknown"
