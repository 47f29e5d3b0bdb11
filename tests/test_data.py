import json
import logging
import shutil
from pathlib import Path

import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.data import (
    BucketBatchSampler,
    FilterConfig,
    ManifestError,
    SpeechDataset,
    Utterance,
    collate,
    filter_utterances,
    prepare_librispeech,
    prepare_tsv,
    read_manifest,
    write_manifest,
)
from asr.features import FeatureConfig, LogMel
from asr.text import Vocabulary
from tests.conftest import LIBRISPEECH


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """A writable copy of the fixture: tmp/LibriSpeech/<subset>/..."""
    shutil.copytree(LIBRISPEECH, tmp_path / "LibriSpeech")
    return tmp_path


@pytest.mark.parametrize("root", ["parent", "LibriSpeech"])
def test_prepare_librispeech_writes_one_manifest_per_subset(corpus: Path, tmp_path: Path, root: str) -> None:
    top = corpus if root == "parent" else corpus / "LibriSpeech"
    reports = prepare_librispeech(top, ["dev-clean", "test-clean"], tmp_path / "out", jobs=2)
    assert [r.utterances for r in reports] == [4, 2] and all(not r.skipped for r in reports)
    lines = read_lines(tmp_path / "out" / "dev-clean.jsonl")
    assert [line["id"] for line in lines] == ["1001-2001-0000", "1001-2001-0001", "1002-2002-0000", "1002-2002-0001"]
    first = lines[0]
    assert first["text"] == "THE CAT SAT ON THE MAT" and first["speaker"] == "1001"
    audio = Path(first["audio"])
    assert audio == corpus / "LibriSpeech" / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"
    assert first["duration"] == pytest.approx(soundfile.info(audio).duration, abs=1e-4)
    assert reports[0].seconds == pytest.approx(sum(line["duration"] for line in lines), abs=1e-3)


def test_prepare_librispeech_counts_and_skips_broken_items(corpus: Path, tmp_path: Path) -> None:
    chapter = corpus / "LibriSpeech" / "dev-clean" / "1001" / "2001"
    transcript = chapter / "1001-2001.trans.txt"
    transcript.write_text(
        transcript.read_text() + "1001-2001-0007 LISTED BUT NOT RECORDED\nnot-an-id SOME TEXT\n1001-2001-0008\n"
    )
    (chapter / "1001-2001-0001.flac").write_bytes(b"garbage, not flac")
    shutil.copy(chapter / "1001-2001-0000.flac", chapter / "1001-2001-0009.flac")  # no transcript line
    (report,) = prepare_librispeech(corpus, ["dev-clean"], tmp_path / "out", jobs=2)
    assert report.skipped == {
        "missing audio": 1,
        "malformed transcript line": 2,
        "unreadable audio": 1,
        "no transcript": 1,
    }
    assert report.utterances == 3
    assert "skipped 5" in report.summary()


def test_a_missing_subset_names_the_folders_searched(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="subset 'train-clean-100' not found: looked in") as caught:
        prepare_librispeech(corpus, ["dev-clean", "train-clean-100"], tmp_path / "out")
    assert str(corpus / "LibriSpeech" / "train-clean-100") in str(caught.value)
    assert not (tmp_path / "out" / "dev-clean.jsonl").exists()  # nothing written before the check


def test_prepare_tsv_reads_fsdd_as_it_is(fsdd: Path, tmp_path: Path) -> None:
    report = prepare_tsv(fsdd / "transcripts.tsv", tmp_path / "fsdd.jsonl", jobs=2)
    lines = read_lines(tmp_path / "fsdd.jsonl")
    assert report.utterances == len(lines) == 3000 and not report.skipped
    by_id = {line["id"]: line for line in lines}
    assert by_id["0_jackson_0"]["text"] == "zero" and by_id["0_jackson_0"]["speaker"] == "jackson"
    assert Path(by_id["0_jackson_0"]["audio"]) == fsdd / "recordings" / "0_jackson_0.wav"


def make_table(folder: Path, header: str, rows: list[str]) -> Path:
    (folder / "clips").mkdir(exist_ok=True)
    for name in ("a", "b"):
        shutil.copy(
            LIBRISPEECH / "test-clean" / "1003" / "2003" / "1003-2003-0000.flac", folder / "clips" / f"{name}.flac"
        )
    table = folder / "table.tsv"
    table.write_text("\n".join([header, *rows]) + "\n")
    return table


def test_prepare_tsv_takes_relative_paths_and_ignores_other_columns(tmp_path: Path) -> None:
    table = make_table(
        tmp_path,
        "notes\tpath\ttext",
        [
            "x\tclips/a.flac\tOpen the door",
            "y\tclips/b.flac\tplease",
            "z\tclips/none.flac\tgone",
            "bad row",
            "w\tclips/a.flac\t",
        ],
    )
    report = prepare_tsv(table, tmp_path / "out.jsonl")
    assert report.skipped == {"missing audio": 1, "malformed row": 1, "empty text": 1}
    assert [line["id"] for line in read_lines(tmp_path / "out.jsonl")] == ["a", "b"]


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("file\tsentence", "no 'text' column"),
        ("name\ttext", "no audio column; the header needs one of audio, path, file"),
    ],
)
def test_prepare_tsv_rejects_a_table_without_the_needed_columns(tmp_path: Path, header: str, problem: str) -> None:
    table = make_table(tmp_path, header, ["clips/a.flac\thello"])
    with pytest.raises(ManifestError, match=problem):
        prepare_tsv(table, tmp_path / "out.jsonl")


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


def test_speed_perturbation_in_the_dataset_changes_lengths(corpus: Path, tmp_path: Path) -> None:
    prepare_librispeech(corpus, ["test-clean"], tmp_path)
    utterances = read_manifest(tmp_path / "test-clean.jsonl")
    plain = SpeechDataset(utterances, Vocabulary.default())[0].waveform.shape[0]
    torch.manual_seed(0)
    dataset = SpeechDataset(utterances, Vocabulary.default(), (0.9, 1.1))
    perturbed = {dataset[0].waveform.shape[0] for _ in range(12)}
    expected = [plain / 0.9, plain / 1.1]
    assert all(min(abs(n - e) for e in expected) <= 1 for n in perturbed)
    assert len(perturbed) == 2


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
