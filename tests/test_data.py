import json
import logging
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.audio import AudioError, load_audio
from asr.data import (
    BucketBatchSampler,
    FilterConfig,
    ManifestError,
    SpeechDataset,
    Utterance,
    collate,
    filter_utterances,
    first_unreadable,
    read_manifest,
    write_manifest,
)
from asr.features import FeatureConfig, LogMel
from asr.prepare import prepare_librispeech
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
        "training transcripts holding digits: 2 (e.g. '4' in a: 'I HAVE 42 CATS'), which the character vocabulary "
        "cannot spell; asr prepare --expand-numbers writes them as words",
        "training transcripts holding symbols: 1 (e.g. '&' in b: 'ROOM 7 & CAFÉ'), which normalize() drops",
    ]


def test_collated_batch_features_equal_one_by_one(corpus: Path, tmp_path: Path) -> None:
    prepare_librispeech(corpus, ["dev-clean"], tmp_path)
    vocab = Vocabulary.default()
    dataset = SpeechDataset(read_manifest(tmp_path / "dev-clean.jsonl"), vocab)
    examples = [dataset[i] for i in range(len(dataset))]
    batch = collate(examples, vocab.pad_id)
    assert batch.waveforms.shape == (4, max(e.waveform.shape[0] for e in examples))
    assert batch.targets.shape == (4, max(e.targets.shape[0] for e in examples))
    logmel = LogMel(FeatureConfig())
    features, lengths = logmel(batch.waveforms, batch.waveform_lengths)
    for i, example in enumerate(examples):
        alone, alone_length = logmel(example.waveform[None], torch.tensor([example.waveform.shape[0]]))
        assert lengths[i] == alone_length[0]
        torch.testing.assert_close(features[i, : lengths[i]], alone[0, : alone_length[0]])
        length = int(batch.target_lengths[i])
        assert vocab.decode(batch.targets[i, :length]) == dataset.utterances[i].text
        assert (batch.targets[i, length:] == vocab.pad_id).all()


def test_dataset_speed_factors_depend_on_seed_epoch_and_index_only(corpus: Path, tmp_path: Path) -> None:
    prepare_librispeech(corpus, ["dev-clean"], tmp_path)
    utterances = read_manifest(tmp_path / "dev-clean.jsonl")
    plain = [SpeechDataset(utterances, Vocabulary.default())[i].waveform.shape[0] for i in range(4)]
    dataset = SpeechDataset(utterances, Vocabulary.default(), (0.9, 1.1), seed=7)

    def lengths(epoch: int) -> list[int]:
        dataset.set_epoch(epoch)
        return [dataset[i].waveform.shape[0] for i in range(4)]

    seen = [lengths(epoch) for epoch in range(4)]
    assert lengths(2) == seen[2]
    for epoch_lengths in seen:
        for n, base in zip(epoch_lengths, plain, strict=True):
            assert min(abs(n - base / 0.9), abs(n - base / 1.1)) <= 1
    assert len({n for epoch_lengths in seen for n in epoch_lengths}) > 4  # both factors occur


lengths_strategy = st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(
    lengths=lengths_strategy,
    max_frames=st.integers(min_value=400, max_value=3000),
    seed=st.integers(0, 5),
    epoch=st.integers(0, 5),
)
def test_sampler_yields_every_utterance_once_within_the_budget(lengths, max_frames, seed, epoch) -> None:
    sampler = BucketBatchSampler(lengths, max_frames, seed=seed)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(batch) * max(lengths[i] for i in batch) <= max_frames for batch in batches)
    assert len(sampler) == len(batches)


@settings(max_examples=30, deadline=None)
@given(lengths=lengths_strategy, seed=st.integers(0, 5))
def test_sampler_order_depends_only_on_seed_and_epoch(lengths, seed) -> None:
    first, second = BucketBatchSampler(lengths, 1000, seed=seed), BucketBatchSampler(lengths, 1000, seed=seed)
    for epoch in (0, 3):
        first.set_epoch(epoch)
        second.set_epoch(epoch)
        assert list(first) == list(second)


def test_sampler_shuffles_between_epochs_and_keeps_padding_low() -> None:
    lengths = [100 + (i * 37) % 900 for i in range(500)]
    sampler = BucketBatchSampler(lengths, 8000, seed=1)
    epochs = [sampler.batches(epoch) for epoch in range(2)]
    assert epochs[0] != epochs[1]
    padded = sum(len(b) * max(lengths[i] for i in b) for b in epochs[0])
    assert sum(lengths) / padded > 0.9


def test_sorted_epochs_go_shortest_first_then_shuffle() -> None:
    lengths = [100 + (i * 37) % 900 for i in range(500)]
    sampler = BucketBatchSampler(lengths, 8000, seed=1, sorted_epochs=2, num_replicas=2, rank=1)
    for epoch in (0, 1):  # ascending up to the 5% length jitter
        longest = [max(lengths[i] for i in batch) for batch in sampler.batches(epoch)]
        assert all(a <= b * 1.1 for a, b in zip(longest, longest[1:], strict=False))
    longest = [max(lengths[i] for i in batch) for batch in sampler.batches(2)]
    assert not all(a <= b * 1.1 for a, b in zip(longest, longest[1:], strict=False))
    assert sorted(map(sorted, sampler.batches(0))) != sorted(map(sorted, sampler.batches(1)))  # still jittered


def test_sampler_resumes_mid_epoch() -> None:
    lengths = [(i * 7919) % 300 + 10 for i in range(200)]
    sampler = BucketBatchSampler(lengths, 1200, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=5)
    assert list(sampler) == full[5:] and len(sampler) == len(full) - 5


def test_sampler_splits_batches_evenly_across_ranks() -> None:
    lengths = [(i * 31) % 200 + 5 for i in range(301)]
    ranks = [BucketBatchSampler(lengths, 900, seed=0, num_replicas=3, rank=r).batches(4) for r in range(3)]
    assert len({len(batches) for batches in ranks}) == 1
    seen = [i for batches in ranks for batch in batches for i in batch]
    assert len(seen) == len(set(seen))


def test_sampler_caps_the_batch_size_when_asked() -> None:
    batches = BucketBatchSampler([10] * 50, 10_000, max_batch_size=8).batches(0)
    assert max(len(b) for b in batches) == 8


def test_sampler_rejects_an_utterance_longer_than_the_budget() -> None:
    with pytest.raises(ValueError, match="longer than max_frames=100"):
        BucketBatchSampler([50, 150], 100)


def test_a_cut_of_a_recording_loads_only_its_span(tmp_path: Path) -> None:
    audio = LIBRISPEECH / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"
    line = {"id": "cut", "audio": str(audio), "duration": 0.5, "text": "A", "start": 0.25, "end": 0.75}
    (tmp_path / "m.jsonl").write_text(json.dumps(line) + "\n")
    (utterance,) = read_manifest(tmp_path / "m.jsonl")
    assert (utterance.start, utterance.end) == (0.25, 0.75)
    whole, _ = load_audio(audio)
    example = SpeechDataset([utterance], Vocabulary.default())[0]
    torch.testing.assert_close(example.waveform, whole[4000:12000], atol=1e-4, rtol=0)
    assert json.loads(utterance.to_json())["start"] == 0.25
    line["end"] = 0.2
    (tmp_path / "bad.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(ManifestError, match="bad.jsonl:1: 'start' and 'end' must be seconds with 0 <= start < end"):
        read_manifest(tmp_path / "bad.jsonl")


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
    found = first_unreadable(utterances)  # what training and evaluation check before they start
    assert found is not None and found[0].id == "past" and str(found[1]) == problem
    with pytest.raises(AudioError) as error:
        utterances[1].load()
    assert str(error.value) == problem
    assert SpeechDataset(utterances, Vocabulary.default())[1].error == f"utterance past: {problem}"


def test_augmentation_in_the_dataset_depends_on_seed_epoch_and_index_alone(tmp_path: Path) -> None:
    from asr.augment import AugmentConfig

    audio = LIBRISPEECH / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"
    utterances = [Utterance("a", audio, 1.83, "A"), Utterance("b", audio, 1.83, "B")]
    config = AugmentConfig(noise_prob=1.0, gain_prob=1.0, babble_prob=1.0)  # babble of the set's utterances
    dataset = SpeechDataset(utterances, Vocabulary.default(), seed=3, augment=config)
    first = dataset[0].waveform
    again = SpeechDataset(utterances, Vocabulary.default(), seed=3, augment=config)[0].waveform
    assert torch.equal(first, again)  # another worker, or a resumed run, draws the same
    assert not torch.equal(first, dataset[1].waveform)  # another utterance, another draw
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[0].waveform)  # another epoch, another draw
    plain = SpeechDataset(utterances, Vocabulary.default(), seed=3)[0].waveform
    assert first.shape == plain.shape and not torch.equal(first, plain)


def test_babble_skips_an_utterance_that_cannot_be_read(tmp_path: Path) -> None:
    from asr.augment import AugmentConfig

    audio = LIBRISPEECH / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"
    utterances = [Utterance("a", audio, 1.83, "A"), Utterance("gone", tmp_path / "gone.flac", 1.0, "B")]
    config = AugmentConfig(babble_prob=1.0, babble_talkers=(4, 4))
    example = SpeechDataset(utterances, Vocabulary.default(), augment=config)[0]
    assert example.error is None and torch.isfinite(example.waveform).all()
