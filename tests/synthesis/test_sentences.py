"""Sentences to synthesise (`asr.synthesis.sentences`): the spoken form of raw text and what is
dropped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.synthesis.sentences import (
    MAX_WORDS,
    MIN_WORDS,
    read_fortunes,
    sentences_from,
    spoken_form,
)
from asr.text import normalize


def transcript(raw: str) -> str | None:
    spoken = spoken_form(raw)
    return None if spoken is None else normalize(spoken)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mr. Smith met Dr. Jones at St. Paul's today.", "MISTER SMITH MET DOCTOR JONES AT SAINT PAUL'S TODAY"),
        ("Salt & pepper were on the table.", "SALT AND PEPPER WERE ON THE TABLE"),
        ("He kept 3 dogs and 21 cats at home.", "HE KEPT THREE DOGS AND TWENTY ONE CATS AT HOME"),
        ("It all happened in 1984, they say.", "IT ALL HAPPENED IN NINETEEN EIGHTY FOUR THEY SAY"),
        ("The army had 1,500 men on the field.", "THE ARMY HAD ONE THOUSAND FIVE HUNDRED MEN ON THE FIELD"),
        ("Music of the 1960s was loud and new.", "MUSIC OF THE NINETEEN SIXTIES WAS LOUD AND NEW"),
        ("The ticket cost $5 at the door.", "THE TICKET COST FIVE DOLLARS AT THE DOOR"),
        ("It costs $2.50 to get in.", "IT COSTS TWO DOLLARS AND FIFTY CENTS TO GET IN"),
        ("She came 2nd in the race again.", "SHE CAME SECOND IN THE RACE AGAIN"),
        ("Prices rose by 50% last year.", "PRICES ROSE BY FIFTY PERCENT LAST YEAR"),
        ("Well... I think we should go home.", "WELL I THINK WE SHOULD GO HOME"),
        ('"Hello," she said -- and left (quickly).', "HELLO SHE SAID AND LEFT QUICKLY"),
        ("A well-known man, 'tis said, came.", "A WELL KNOWN MAN TIS SAID CAME"),
        ("Bring fruit, e.g. apples and pears.", "BRING FRUIT FOR EXAMPLE APPLES AND PEARS"),
    ],
)
def test_spoken_form_spells_out_what_engines_misread(raw: str, expected: str) -> None:
    assert transcript(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "He read chapter XII of the book.",  # espeak: "roman twelve"
        "King Henry V went to war with France.",
        "The FBI came to the house today.",  # acronym
        "The U.S. army marched on the town.",  # dotted abbreviation
        "See http://example.com for more on it.",
        "Visit www.example.org for the full story.",
        "Write to me at someone@example.com please.",
        "Meet me at 3:30 in the big hall.",  # digits left
        "Use 1/2 cup of sugar for the cake.",
        "The 3D film was far too long.",
        "Add #5 to the list of things.",  # a symbol
        "Go home now.",  # fewer than 4 words
        " ".join(["word"] * (MAX_WORDS + 1)),
    ],
)
def test_spoken_form_drops_what_cannot_be_read_unambiguously(raw: str) -> None:
    assert spoken_form(raw) is None


def test_spoken_form_keeps_four_to_thirty_words_and_punctuation_for_rhythm() -> None:
    assert spoken_form(" ".join(["word"] * MAX_WORDS)) is not None
    assert spoken_form("one two three four") == "One two three four."
    assert spoken_form("Wait, what did you say?") == "Wait, what did you say?"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcXYZ 19$&.,;:'\"-!?()%#"), max_size=80))
def test_spoken_form_output_reads_as_its_transcript(raw: str) -> None:
    spoken = spoken_form(raw)
    if spoken is not None:
        assert re.fullmatch(r"[A-Za-z' .,;:?!]+", spoken)
        assert MIN_WORDS <= len(normalize(spoken).split()) <= MAX_WORDS
        assert normalize(normalize(spoken)) == normalize(spoken)


def test_fortunes_lose_their_attributions(tmp_path: Path) -> None:
    (tmp_path / "people").write_text(
        "A friend is a present you give yourself.\n\t\t-- Robert Louis Stevenson\n%\n"
        "Nothing is as easy as it looks at first.\n"
    )
    sentences = list(sentences_from("fortunes", read_fortunes(tmp_path)))
    assert [s.transcript for s in sentences] == [
        "A FRIEND IS A PRESENT YOU GIVE YOURSELF",
        "NOTHING IS AS EASY AS IT LOOKS AT FIRST",
    ]
