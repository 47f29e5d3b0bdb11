"""The dataset and collation (`asr.data.dataset`): batched equals one by one, augmentation that
depends on seed, epoch and index alone, cuts of recordings."""

import json
from pathlib import Path

import pytest
import torch

from asr.data.dataset import SpeechDataset, collate
from asr.data.manifest import (
    ManifestError,
    Utterance,
    read_manifest,
)
from asr.data.prepare import prepare_librispeech
from asr.frontend.audio import load_audio
from asr.frontend.features import FeatureConfig, LogMel
from asr.text import Vocabulary
from tests.conftest import LIBRISPEECH


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


def test_augmentation_in_the_dataset_depends_on_seed_epoch_and_index_alone(tmp_path: Path) -> None:
    from asr.frontend.augment import AugmentConfig

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
    from asr.frontend.augment import AugmentConfig

    audio = LIBRISPEECH / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"
    utterances = [Utterance("a", audio, 1.83, "A"), Utterance("gone", tmp_path / "gone.flac", 1.0, "B")]
    config = AugmentConfig(babble_prob=1.0, babble_talkers=(4, 4))
    example = SpeechDataset(utterances, Vocabulary.default(), augment=config)[0]
    assert example.error is None and torch.isfinite(example.waveform).all()
