import json

import pytest

from asr.transcribe import Segment, Transcript, Word
from asr.writers import WRITERS, timestamp, to_dict

TRANSCRIPT = Transcript(
    source="talk.flac",
    duration=3725.5,
    segments=(
        Segment(0.25, 4.0, "HELLO THERE", -0.12345, (Word("HELLO", 0.25, 1.0), Word("THERE", 1.1, 4.0))),
        Segment(3601.0015, 3725.5, "GOOD BYE", -0.5),
    ),
)


@pytest.mark.parametrize(
    ("seconds", "decimal", "expected"),
    [
        (0, ",", "00:00:00,000"),
        (3601.0015, ",", "01:00:01,002"),
        (59.9996, ".", "00:01:00.000"),
        (-1, ".", "00:00:00.000"),
    ],
)
def test_timestamps_round_to_the_millisecond(seconds: float, decimal: str, expected: str) -> None:
    assert timestamp(seconds, decimal) == expected


def test_srt_numbers_its_cues_and_uses_commas() -> None:
    assert WRITERS["srt"](TRANSCRIPT) == (
        "1\n00:00:00,250 --> 00:00:04,000\nHELLO THERE\n\n2\n01:00:01,002 --> 01:02:05,500\nGOOD BYE\n"
    )


def test_vtt_has_its_header_and_uses_dots() -> None:
    assert WRITERS["vtt"](TRANSCRIPT) == (
        "WEBVTT\n\n00:00:00.250 --> 00:00:04.000\nHELLO THERE\n\n01:00:01.002 --> 01:02:05.500\nGOOD BYE\n"
    )


def test_tsv_has_a_header_and_seconds() -> None:
    assert WRITERS["tsv"](TRANSCRIPT) == "start\tend\ttext\n0.250\t4.000\tHELLO THERE\n3601.002\t3725.500\tGOOD BYE\n"


def test_json_is_one_line_holding_segments_and_words() -> None:
    text = WRITERS["json"](TRANSCRIPT)
    assert text.count("\n") == 1
    record = json.loads(text)
    assert record == to_dict(TRANSCRIPT)
    assert record["text"] == "HELLO THERE GOOD BYE" and record["duration"] == 3725.5
    assert record["segments"][0]["words"] == [
        {"text": "HELLO", "start": 0.25, "end": 1.0},
        {"text": "THERE", "start": 1.1, "end": 4.0},
    ]
    assert "words" not in record["segments"][1] and record["segments"][0]["avg_log_prob"] == -0.1235


def test_an_empty_transcript_is_valid_in_every_format() -> None:
    empty = Transcript("silence.wav", 10.0, ())
    assert WRITERS["txt"](empty) == "\n"
    assert WRITERS["srt"](empty) == ""
    assert WRITERS["vtt"](empty) == "WEBVTT\n"
    assert WRITERS["tsv"](empty) == "start\tend\ttext\n"
    assert json.loads(WRITERS["json"](empty))["segments"] == []
