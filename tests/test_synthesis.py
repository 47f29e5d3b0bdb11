"""The corpus synthesiser: the text normaliser, the seeded split, the layout, resume and the check pass."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.cli import main
from asr.data import read_manifest
from asr.prepare import prepare_librispeech
from asr.synthesis import engines, sentences
from asr.synthesis.corpus import (
    SUBSETS,
    CheckConfig,
    CorpusConfig,
    CorpusError,
    assign_voices,
    check_corpus,
    plan_corpus,
    synthesize_corpus,
)
from asr.synthesis.engines import EngineMissingError, check_engines
from asr.synthesis.sentences import (
    MAX_WORDS,
    MIN_WORDS,
    Sentence,
    choose_sentences,
    closed_vocabulary,
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


SMALL = CorpusConfig(
    train_utterances=4,
    dev_utterances=4,
    test_utterances=4,
    chapter_utterances=2,
    engines=("espeak",),
    texts=("wordnet",),
    rates=(1.0, 1.15),
    pitches=(0.0, 2.0),
    seed=3,
)


def fake_sentences(count: int) -> list[Sentence]:
    """`count` distinct sentences ("The alpha and the bravo met charlie today.") from 1,728."""
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
    ]
    raws = [f"The {words[i % 12]} and the {words[i // 12 % 12]} met {words[i // 144]} today." for i in range(count)]
    return [Sentence("test", s, normalize(s)) for s in map(spoken_form, raws) if s is not None]


def test_split_is_disjoint_in_talkers_and_sentences_for_all_engines() -> None:
    config = CorpusConfig(train_utterances=400, dev_utterances=60, test_utterances=60, seed=7)
    voices = assign_voices(config)
    talkers = {subset: {v.talker for v in voices[subset]} for subset in SUBSETS}
    assert all(talkers[subset] for subset in SUBSETS)
    assert not talkers["train"] & talkers["dev"] and not talkers["train"] & talkers["test"]
    assert not talkers["dev"] & talkers["test"]
    chapters = plan_corpus(config, fake_sentences(600))
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        sentences = [{u.transcript for c in chapters if c.subset == s for u in c.utterances} for s in (a, b)]
        assert not sentences[0] & sentences[1]
        ids = [{c.speaker.voice for c in chapters if c.subset == s} for s in (a, b)]
        assert not ids[0] & ids[1]
    assert {c.speaker.voice.engine for c in chapters if c.subset == "train"} == set(engines.ENGINES)


def test_a_closed_vocabulary_keeps_only_sentences_of_its_words() -> None:
    sentences = [
        Sentence("test", "", t)
        for t in ("THE CAT SAT", "THE DOG SAT", "THE CAT RAN", "A ZEBRA SAT", "THE CAT SAT DOWN", "THE DOG RAN")
    ]
    # counts: THE 5, SAT 4, CAT 3, DOG 2, RAN 2, A 1, DOWN 1, ZEBRA 1; ties go alphabetically
    assert [s.transcript for s in closed_vocabulary(sentences, 4)] == ["THE CAT SAT", "THE DOG SAT"]
    assert [s.transcript for s in closed_vocabulary(sentences, 5)] == [
        "THE CAT SAT",
        "THE DOG SAT",
        "THE CAT RAN",
        "THE DOG RAN",
    ]
    kept = closed_vocabulary(fake_sentences(600), 30)
    words = {word for sentence in kept for word in sentence.transcript.split()}
    assert kept and len(words) <= 30


def test_too_few_sentences_in_a_closed_vocabulary_is_a_clear_error() -> None:
    config = dataclasses.replace(SMALL, vocabulary=5)
    with pytest.raises(CorpusError, match="within a vocabulary of 5 words"):
        plan_corpus(config, closed_vocabulary(fake_sentences(600), 5))


def test_excluded_sentences_are_in_no_subset_and_leave_the_vocabulary_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sentences, "load_sentences", lambda texts: fake_sentences(600))
    closed = dataclasses.replace(SMALL, vocabulary=30)
    within = [s.transcript for s in closed_vocabulary(fake_sentences(600), 30)]
    exclude = {within[0], within[5], "A SENTENCE OF NO TEXT"}
    kept, excluded = choose_sentences(closed.texts, closed.vocabulary, exclude)
    assert excluded == 2 and [s.transcript for s in kept] == [t for t in within if t not in exclude]
    everything, left_out = choose_sentences(SMALL.texts, SMALL.vocabulary, exclude)
    assert left_out == 2 and len(everything) == len(fake_sentences(600)) - 2
    read = {u.transcript for c in plan_corpus(SMALL, everything) for u in c.utterances}
    assert read and not read & exclude


def test_split_is_reproducible_from_the_seed() -> None:
    sentences = fake_sentences(600)
    assert plan_corpus(SMALL, sentences) == plan_corpus(SMALL, sentences)
    assert plan_corpus(SMALL, sentences) != plan_corpus(dataclasses.replace(SMALL, seed=4), sentences)


def test_a_missing_engine_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines.shutil, "which", lambda program: None)
    with pytest.raises(EngineMissingError, match="espeak-ng"):
        check_engines(["espeak"])


needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs the Debian packages espeak-ng and sox (apt-get install espeak-ng sox)",
)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 utterances by espeak-ng: 2 chapters of 2 in each subset, from a handful of sentences."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("needs the Debian packages espeak-ng and sox (apt-get install espeak-ng sox)")
    root = tmp_path_factory.mktemp("synth")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sentences, "load_sentences", lambda texts: fake_sentences(40))
        report = synthesize_corpus(root, SMALL, jobs=2)
    assert report.synthesized == 12
    return root


@needs_espeak
def test_corpus_has_the_librispeech_layout(small_corpus: Path) -> None:
    flacs = sorted(small_corpus.glob("*/*/*/*.flac"))
    assert len(flacs) == 12
    for flac in flacs:
        subset, speaker, chapter = flac.parts[-4:-1]
        assert subset in SUBSETS
        assert re.fullmatch(rf"{speaker}-{chapter}-\d{{4}}\.flac", flac.name)
        info = soundfile.info(str(flac))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        transcript_lines = (flac.parent / f"{speaker}-{chapter}.trans.txt").read_text().splitlines()
        assert any(line.startswith(flac.stem + " ") for line in transcript_lines)
        assert all(re.fullmatch(r"[\d-]+ [A-Z' ]+", line) for line in transcript_lines)
    speakers = (small_corpus / "SPEAKERS.TXT").read_text().splitlines()
    rows = [line.split("|") for line in speakers if not line.startswith(";")]
    assert {row[0].strip() for row in rows} == {f.parts[-3] for f in flacs}
    assert all(row[4].strip().startswith("espeak en-") for row in rows)


@needs_espeak
def test_speech_starts_and_ends_with_the_planned_silence(small_corpus: Path) -> None:
    for chapter in plan_corpus(SMALL, fake_sentences(40)):
        for utterance in chapter.utterances:
            samples, rate = soundfile.read(chapter.folder(small_corpus) / f"{utterance.id}.flac")
            lead, tail = round(utterance.lead * rate), round(utterance.tail * rate)
            assert 0.05 <= utterance.lead <= 0.4 and 0.05 <= utterance.tail <= 0.4
            assert not samples[:lead].any() and not samples[len(samples) - tail :].any()
            assert np.abs(samples[lead : lead + rate // 2]).max() > 0.01  # speech follows at once


@needs_espeak
def test_prepare_librispeech_reads_the_corpus_unchanged(small_corpus: Path, tmp_path: Path) -> None:
    reports = prepare_librispeech(small_corpus, list(SUBSETS), tmp_path)
    assert [r.utterances for r in reports] == [4, 4, 4]
    assert all(not r.skipped for r in reports)
    by_subset = {s: read_manifest(tmp_path / f"{s}.jsonl") for s in SUBSETS}
    for subset, utterances in by_subset.items():
        assert all(u.text == normalize(u.text) and u.duration > 0.5 for u in utterances), subset
    speakers = [{u.speaker for u in by_subset[s]} for s in SUBSETS]
    texts = [{u.text for u in by_subset[s]} for s in SUBSETS]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert not speakers[a] & speakers[b] and not texts[a] & texts[b]


@needs_espeak
def test_rerun_resumes_and_leaves_finished_files_alone(small_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flacs = sorted(small_corpus.glob("*/*/*/*.flac"))
    mtimes = {f: f.stat().st_mtime_ns for f in flacs}
    flacs[0].unlink()
    monkeypatch.setattr(sentences, "load_sentences", lambda texts: fake_sentences(40))
    report = synthesize_corpus(small_corpus, SMALL, jobs=1)
    assert report.synthesized == 1
    assert {f: f.stat().st_mtime_ns for f in flacs[1:]} == {f: mtimes[f] for f in flacs[1:]}
    with pytest.raises(CorpusError, match="seed"):
        synthesize_corpus(small_corpus, dataclasses.replace(SMALL, seed=4), jobs=1)
    with pytest.raises(CorpusError, match="excluded_sentences"):
        synthesize_corpus(small_corpus, SMALL, jobs=1, exclude={"THE ALFA AND THE ALFA MET ALFA TODAY"})


@needs_espeak
def test_check_passes_the_corpus_and_flags_silent_clipped_and_empty_files(small_corpus: Path, tmp_path: Path) -> None:
    assert check_corpus(small_corpus) == []
    chapter = tmp_path / "test" / "1" / "2"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(0)
    soundfile.write(chapter / "1-2-0000.flac", 1e-4 * rng.standard_normal(16000), 16000, subtype="PCM_16")
    soundfile.write(chapter / "1-2-0001.flac", np.clip(3 * rng.standard_normal(16000), -1, 1), 16000, subtype="PCM_16")
    soundfile.write(chapter / "1-2-0002.flac", np.zeros(0), 16000, subtype="PCM_16")
    soundfile.write(chapter / "1-2-0003.flac", 0.3 * rng.standard_normal(16000), 16000, subtype="PCM_16")
    problems = {p.path.name: p.reason for p in check_corpus(tmp_path, CheckConfig())}
    assert problems.keys() == {"1-2-0000.flac", "1-2-0001.flac", "1-2-0002.flac"}
    assert problems["1-2-0000.flac"].startswith("silent")
    assert problems["1-2-0001.flac"].startswith("clipped")
    assert problems["1-2-0002.flac"].startswith(("empty", "unreadable"))


@pytest.mark.parametrize("numbers", [{"snr_db": (math.nan, 5.0)}, {"rates": (1.0, math.inf)}, {"pitches": (math.nan,)}])
def test_numbers_that_are_not_finite_are_refused(numbers: dict) -> None:
    with pytest.raises(CorpusError, match=f"{next(iter(numbers))} must be finite numbers"):
        CorpusConfig(**numbers)


def test_checking_a_folder_without_a_corpus_is_an_error_not_a_pass(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not a corpus")
    assert main(["synthesize", "--out", str(tmp_path), "--check-only"]) == 1
    assert capsys.readouterr().err == (
        f"asr: error: {tmp_path}: no flac files in <subset>/<speaker>/<chapter>/ folders to check; is it a corpus?\n"
    )
