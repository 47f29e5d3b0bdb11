"""The corpus plan (`asr.synthesis.plan`): subsets disjoint in talkers and sentences, a closed
vocabulary, exclusions, the seed."""

from __future__ import annotations

import dataclasses

import pytest

from asr.synthesis import sentences
from asr.synthesis.config import SUBSETS, CorpusConfig, CorpusError
from asr.synthesis.plan import assign_voices, plan_corpus
from asr.synthesis.sentences import (
    Sentence,
    choose_sentences,
    closed_vocabulary,
)
from asr.synthesis.voices import ENGINES
from tests.synthesis.small import SMALL, fake_sentences


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
    assert {c.speaker.voice.engine for c in chapters if c.subset == "train"} == set(ENGINES)


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


def test_a_held_out_engine_unheard_by_the_training_engines_keeps_none_of_their_talkers() -> None:
    held_out = CorpusConfig(train_utterances=0, dev_utterances=20, test_utterances=20, engines=("flite",))
    unheard = dataclasses.replace(held_out, unheard_engines=("festival",))
    before = {subset: {v.talker for v in voices} for subset, voices in assign_voices(held_out).items()}
    after = {subset: {v.talker for v in voices} for subset, voices in assign_voices(unheard).items()}
    festival_voices = assign_voices(CorpusConfig(engines=("festival",))).values()
    festival = {voice.talker for voices in festival_voices for voice in voices}
    assert {"kal", "slt"} <= festival
    assert (before["dev"] | before["test"]) & festival  # without it, flite's dev or test voice is heard
    assert not (after["dev"] | after["test"]) & festival
    assert len(after["dev"]) == len(after["test"]) == 1 and not after["train"]  # awb and rms, one each
    assert after["dev"] | after["test"] == {"awb", "rms"}


def test_unheard_engines_that_leave_no_voice_are_refused() -> None:
    with pytest.raises(CorpusError, match="both engines and unheard_engines"):
        CorpusConfig(engines=("flite",), unheard_engines=("flite",))
    with pytest.raises(CorpusError, match="unheard_engines must be some of"):
        CorpusConfig(engines=("flite",), unheard_engines=("piper",))
