"""Manifests (`asr.data.manifest`): round trips, errors that name the line, filters that say what
they drop, the header check."""

import json
import logging
import os
import threading
from collections import Counter
from pathlib import Path

import pytest

from asr.data.dataset import SpeechDataset
from asr.data.manifest import (
    FilterConfig,
    ManifestError,
    Utterance,
    check_audio,
    draw_across_speakers,
    filter_utterances,
    read_manifest,
    write_manifest,
)
from asr.frontend.audio import AudioError
from asr.text import Vocabulary
from tests.conftest import LIBRISPEECH


def test_manifest_round_trips_with_relative_audio(tmp_path: Path) -> None:
    utterances = [
        Utterance("u1", tmp_path / "a.flac", 1.5, "HELLO", "s1"),
        Utterance("u2", tmp_path / "b.flac", 2.0, "HI"),
    ]
    write_manifest(tmp_path / "m.jsonl", utterances)
    assert read_manifest(tmp_path / "m.jsonl") == utterances
    (tmp_path / "rel.jsonl").write_text('{"id": "r", "audio": "sub/x.wav", "duration": 1, "text": "A"}\n')
    assert read_manifest(tmp_path / "rel.jsonl")[0].audio == tmp_path / "sub" / "x.wav"


GOOD = '{"id": "a", "audio": "a.wav", "duration": 1.0, "text": "A"}'


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty manifest"),
        (GOOD + "\n{broken\n", r"m.jsonl:2: invalid JSON"),
        ('{"id": "a", "audio": "a.wav", "text": "A"}\n', r"m.jsonl:1: missing key 'duration'"),
        ('{"id": "a", "audio": "a.wav", "duration": "long", "text": "A"}\n', r"'duration' has the wrong type"),
        ('{"id": "a", "audio": "a.wav", "duration": -1, "text": "A"}\n', r"positive number of seconds"),
        ("[1, 2]\n", r"m.jsonl:1: expected a JSON object"),
        (GOOD + "\n" + GOOD + "\n", r"m.jsonl:2: id 'a' already used on line 1"),
    ],
)
def test_bad_manifests_name_the_line_and_the_problem(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "m.jsonl").write_text(content)
    with pytest.raises(ManifestError, match=problem):
        read_manifest(tmp_path / "m.jsonl")


def test_a_missing_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nope.jsonl: no such file"):
        read_manifest(tmp_path / "nope.jsonl")


def test_a_manifest_given_as_a_pipe_is_read(tmp_path: Path) -> None:
    """`--manifest <(grep ... m.jsonl)`: a pipe is no regular file, and was called missing."""
    os.mkfifo(tmp_path / "pipe")
    writer = threading.Thread(target=lambda: (tmp_path / "pipe").write_text(GOOD + "\n"))
    writer.start()
    assert [u.id for u in read_manifest(tmp_path / "pipe")] == ["a"]
    writer.join()


def test_filters_drop_and_log_what_they_drop(caplog) -> None:
    utterances = [
        Utterance("short", Path("a"), 0.2, "HI"),
        Utterance("long", Path("b"), 30.0, "HELLO"),
        Utterance("wordy", Path("c"), 3.0, "A VERY LONG TRANSCRIPT"),
        Utterance("silent", Path("d"), 3.0, "..."),
        Utterance("kept", Path("e"), 3.0, "FINE"),
    ]
    config = FilterConfig(min_duration=0.5, max_duration=20.0, max_target_length=10)
    with caplog.at_level(logging.INFO, logger="asr.data"):
        kept = filter_utterances(utterances, config)
    assert [u.id for u in kept] == ["kept"]
    assert len(caplog.records) == 4 and all("dropped 1 of 5" in r.getMessage() for r in caplog.records)


def test_filters_say_what_normalisation_drops_from_the_transcripts_kept(caplog) -> None:
    utterances = [Utterance("a", Path("a"), 2.0, "I HAVE 42 CATS"), Utterance("b", Path("b"), 2.0, "ROOM 7 & CAFÉ")]
    with caplog.at_level(logging.WARNING, logger="asr.data"):
        assert filter_utterances(utterances, FilterConfig()) == utterances
    assert [r.getMessage() for r in caplog.records] == [
        "training transcripts holding digits: 2 ('4' x1, '2' x1, '7' x1; e.g. '4' in a: 'I HAVE 42 CATS'), "
        "which the character vocabulary "
        "cannot spell; asr prepare --expand-numbers writes them as words",
        "training transcripts holding symbols: 1 ('&' x1; e.g. '&' in b: 'ROOM 7 & CAFÉ'), which normalize() drops",
    ]


@pytest.mark.parametrize(("start", "end"), [(50.0, 51.0), (1.0, 2.5)])
def test_a_cut_past_its_recording_s_end_is_refused_not_read_as_empty_audio(
    tmp_path: Path, start: float, end: float
) -> None:
    audio = LIBRISPEECH / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"  # 1.83 s
    good = {"id": "good", "audio": str(audio), "duration": 0.5, "text": "A", "start": 0.25, "end": 0.75}
    line = good | {"id": "past", "duration": end - start, "start": start, "end": end}
    (tmp_path / "m.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    utterances = read_manifest(tmp_path / "m.jsonl")
    problem = f"{audio}: {start:g} to {end:g} s lies past the recording's end (1.83 s)"
    found = check_audio(utterances).unreadable  # what training and evaluation check before they start
    assert found is not None and found[0].id == "past" and str(found[1]) == problem
    with pytest.raises(AudioError) as error:
        utterances[1].load()
    assert str(error.value) == problem
    assert SpeechDataset(utterances, Vocabulary.default())[1].error == f"utterance past: {problem}"


def test_a_duration_its_audio_contradicts_is_taken_from_the_audio_and_counted(tmp_path: Path) -> None:
    """A 1.83 s file listed as 60 s, or as 1e308 s, would pass the length filters and the batch
    limits, and give a real-time factor of 1e-309: the header's duration is taken, and said."""
    audio = LIBRISPEECH / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"  # 1.83 s
    lines = [{"id": "right", "duration": 1.9}, {"id": "long", "duration": 60.0}, {"id": "huge", "duration": 1e308},
             {"id": "cut", "duration": 0.5, "start": 0.25, "end": 0.75}]  # fmt: skip
    (tmp_path / "m.jsonl").write_text(
        "".join(json.dumps({"audio": str(audio), "text": "A"} | line) + "\n" for line in lines)
    )
    checked = check_audio(read_manifest(tmp_path / "m.jsonl"))
    assert checked.unreadable is None
    assert [u.duration for u in checked.utterances] == [
        1.9,
        pytest.approx(1.83, abs=0.01),
        pytest.approx(1.83, abs=0.01),
        0.5,
    ]
    assert [u.id for u, _ in checked.corrected] == ["long", "huge"]
    assert checked.summary("m.jsonl") == (
        "m.jsonl: 2 of 4 durations differ from their audio by more than 0.1 s and were taken from the audio "
        f"instead (the most: huge, 1e+308 s listed, {checked.utterances[1].duration:.2f} s heard)"
    )


def spoken_by(speakers: str) -> list[Utterance]:
    """One utterance per letter of `speakers`, each letter a speaker ("." for none)."""
    return [Utterance(f"u{i}", Path("a.wav"), 1.0, "A", None if s == "." else s) for i, s in enumerate(speakers)]


def test_a_draw_takes_one_utterance_of_every_speaker_before_a_second_of_any() -> None:
    utterances = spoken_by("aaaaaaaabbbc")
    sizes = Counter(u.speaker for u in utterances)
    for count in range(1, 13):
        drawn = draw_across_speakers(utterances, count, seed=count)
        taken = Counter(u.speaker for u in drawn)
        assert len(drawn) == count
        # a speaker gives fewer than another only when it has no more, or one fewer
        assert all(taken[s] == sizes[s] or taken[t] - taken[s] <= 1 for s in sizes for t in sizes)
        assert drawn == [u for u in utterances if u in drawn]  # manifest order
    assert {u.speaker for u in draw_across_speakers(utterances, 3)} == {"a", "b", "c"}


def test_a_draw_is_seeded_and_takes_everything_when_asked_for_more() -> None:
    utterances = spoken_by("aaaabbbbcc..")
    assert draw_across_speakers(utterances, 5, seed=1) == draw_across_speakers(utterances, 5, seed=1)
    assert {u.id for seed in range(20) for u in draw_across_speakers(utterances, 5, seed)} == {u.id for u in utterances}
    assert draw_across_speakers(utterances, 100) == utterances
    assert len({u.id for u in draw_across_speakers(utterances, 5) if u.speaker is None}) <= 2
