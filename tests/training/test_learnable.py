from pathlib import Path

import pytest
import torch

from asr.config import load_config
from asr.data.manifest import Utterance, read_manifest
from asr.data.prepare import prepare_librispeech
from asr.frontend.features import FeatureConfig
from asr.model import LASConfig, Listener, ListenerConfig
from asr.text import Vocabulary
from asr.training.config import TrainConfig
from asr.training.learnable import ctc_alignment_frames, find_unlearnable, listener_frames
from tests.conftest import FIXTURES

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_a_ctc_alignment_needs_a_frame_per_token_and_one_between_equal_neighbours() -> None:
    assert ctc_alignment_frames([]) == 0
    assert ctc_alignment_frames([5, 6, 7]) == 3
    assert ctc_alignment_frames([5, 5, 5, 6, 6]) == 8


@pytest.mark.parametrize("frontend", ["none", "conv2d"])
@pytest.mark.parametrize("reduce", [(), (0,), (1, 2), (0, 1, 2)])
def test_listener_frames_equal_what_the_listener_outputs(frontend: str, reduce: tuple[int, ...]) -> None:
    config = ListenerConfig(frontend=frontend, frontend_dim=8, layers=3, units=4, reduce=reduce, dropout=0.0)
    listener = Listener(config).eval()
    lengths = torch.tensor([0, 1, 2, 3, 6, 7, 8, 9, 30, 31])
    with torch.no_grad():
        _, out = listener(torch.randn(len(lengths), 31, 80), lengths)
    assert out.tolist() == [config.output_frames(n) for n in lengths.tolist()]
    seconds = 1.234
    expected = config.output_frames(FeatureConfig().frames_for_duration(seconds))
    assert listener_frames(seconds, FeatureConfig(), LASConfig(listener=config)) == expected


def test_faster_speech_has_fewer_frames_and_can_become_unlearnable() -> None:
    model = LASConfig(listener=ListenerConfig(layers=3, reduce=(0, 1, 2)), ctc_weight=0.3)
    utterance = Utterance("u", Path("u.flac"), 1.0, "A" * 11)  # 98 frames -> 13 at 8x; 11 A's need 21
    assert [u.utterance.id for u in find_unlearnable([utterance], Vocabulary.default(), FeatureConfig(), model)]
    fine = Utterance("v", Path("v.flac"), 1.0, "ABCDEFGHIJKLM")  # 13 characters, 13 frames
    assert not find_unlearnable([fine], Vocabulary.default(), FeatureConfig(), model)
    assert find_unlearnable([fine], Vocabulary.default(), FeatureConfig(), model, speed=1.1)


@pytest.mark.parametrize("config", ["train_clean_100.yaml", "train_960.yaml"])
def test_the_librispeech_configs_can_learn_every_fixture_utterance(config: str, tmp_path: Path) -> None:
    prepare_librispeech(FIXTURES, ["dev-clean", "test-clean"], tmp_path)
    utterances = read_manifest(tmp_path / "dev-clean.jsonl") + read_manifest(tmp_path / "test-clean.jsonl")
    train = load_config(TrainConfig, RECIPES / "librispeech" / "conf" / config)
    assert train.model.listener.subsampling == 4
    speed = 1.1 if train.data.speed_perturb else 1.0
    assert find_unlearnable(utterances, Vocabulary.default(), train.features, train.model, speed) == []
