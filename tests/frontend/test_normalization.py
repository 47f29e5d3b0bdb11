"""Feature normalisation (`asr.frontend.normalization`): statistics, their file, global and per-
utterance normalisation."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asr.frontend.features import FeatureConfig, LogMel
from asr.frontend.normalization import GlobalNorm, NormStats, NormStatsError, StatsAccumulator, compute_stats
from asr.frontend.pipeline import Frontend

CONFIG = FeatureConfig()


def logmel(waveform: torch.Tensor) -> torch.Tensor:
    features, lengths = LogMel(CONFIG)(waveform[None], torch.tensor([waveform.shape[0]]))
    return features[0, : int(lengths[0])]


def test_stats_equal_mean_and_std_of_all_frames(speech) -> None:
    parts = [speech, speech[:8000] * 0.5, speech[4000:]]
    stats = compute_stats(parts, CONFIG)
    frames = torch.cat([logmel(p) for p in parts]).double()
    assert stats.frames == frames.shape[0]
    torch.testing.assert_close(torch.tensor(stats.mean, dtype=torch.float64), frames.mean(0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        torch.tensor(stats.std, dtype=torch.float64), frames.std(0, unbiased=False), rtol=1e-5, atol=1e-5
    )


def test_global_norm_whitens_and_keeps_padding_zero(speech) -> None:
    features = logmel(speech)
    accumulator = StatsAccumulator()
    accumulator.update(features)
    norm = GlobalNorm(accumulator.result())
    padded = torch.cat([features, torch.zeros(7, 80)])[None]
    normalized = norm(padded, torch.tensor([features.shape[0]]))[0]
    real = normalized[: features.shape[0]]
    torch.testing.assert_close(real.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    assert (normalized[features.shape[0] :] == 0).all()


def test_stats_file_round_trips(tmp_path: Path) -> None:
    stats = NormStats(mean=(0.5, -1.0), std=(2.0, 0.25), frames=10)
    stats.save(tmp_path / "cmvn.json")
    assert NormStats.load(tmp_path / "cmvn.json") == stats
    described = NormStats(mean=(0.5, -1.0), std=(2.0, 0.25), frames=10, features=FeatureConfig(n_mels=2))
    described.save(tmp_path / "described.json")
    assert NormStats.load(tmp_path / "described.json") == described


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read"),
        ("{not json", "invalid JSON"),
        (json.dumps({"mean": [1.0]}), "needs keys"),
        (json.dumps({"mean": [1.0], "std": [0.0], "frames": 3}), "std positive"),
        (json.dumps({"mean": [1.0, 2.0], "std": [1.0], "frames": 3}), "same non-zero length"),
        (json.dumps({"mean": [float("nan")], "std": [1.0], "frames": 3}), "must be finite"),
        (json.dumps({"mean": [1.0], "std": [float("inf")], "frames": 3}), "must be finite"),
        (json.dumps({"mean": [1.0], "std": [1.0], "frames": "many"}), "frames must be a positive whole number"),
        (json.dumps({"mean": [1.0], "std": [1.0], "frames": 3, "features": {"n_mels": 2}}), "the features have 2"),
    ],
)
def test_bad_stats_files_are_named_in_the_error(tmp_path: Path, content, problem) -> None:
    path = tmp_path / "cmvn.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(NormStatsError, match=problem) as caught:
        NormStats.load(path)
    assert str(caught.value).startswith(str(path))


def test_statistics_of_audio_far_out_of_range_are_refused(speech) -> None:
    with pytest.raises(NormStatsError, match="mean or variance is not finite"):
        compute_stats([speech * 1e29], FeatureConfig())


def test_statistics_of_silence_are_refused_and_of_band_limited_speech_kept(speech) -> None:
    """All-zero audio gave every band a std of 1e-5, and training divided real speech by it."""
    with pytest.raises(NormStatsError, match="every feature is the same in all 301 frames: is the audio silent"):
        compute_stats([torch.zeros(48_400)], FeatureConfig())
    narrow = F.interpolate(F.avg_pool1d(speech[None, None], 2)[None], scale_factor=(1, 2))[0, 0, 0]  # ~8 kHz
    assert min(compute_stats([narrow, torch.zeros(16_000)], FeatureConfig()).std) >= 1e-5


@pytest.mark.parametrize("mode", ["mean", "mean_and_variance"])
def test_utterance_normalisation_takes_out_a_fixed_channel_and_keeps_padding_at_zero(speech, mode) -> None:
    config = dataclasses.replace(CONFIG, utterance_norm=mode)
    stats = compute_stats([speech], CONFIG)
    frontend = Frontend(config, stats).eval()
    speech = speech + 1e-3 * torch.randn(speech.shape, generator=torch.Generator().manual_seed(0))  # no log floor
    louder = speech * 3.0  # the same talker nearer the microphone: +9.5 dB in every band
    batch = torch.stack([speech, F.pad(louder[:8000], (0, speech.shape[0] - 8000))])
    features, frames = frontend(batch, torch.tensor([speech.shape[0], 8000]))
    alone, _ = frontend(louder[None], torch.tensor([speech.shape[0]]))
    plain, _ = Frontend(CONFIG, stats).eval()(louder[None], torch.tensor([speech.shape[0]]))
    torch.testing.assert_close(alone, features[:1], atol=1e-3, rtol=1e-3)  # the level is gone
    assert not torch.allclose(plain, features[:1], atol=0.1)  # which the global statistics keep
    assert (features[1, int(frames[1]) :] == 0).all()
    real = features[1, : int(frames[1])]
    torch.testing.assert_close(real.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    if mode == "mean_and_variance":
        assert real.std(0, unbiased=False).max() <= 1.0 + 1e-4


def test_an_unknown_utterance_normalisation_is_refused() -> None:
    with pytest.raises(ValueError, match="utterance_norm must be one of off, mean, mean_and_variance"):
        FeatureConfig(utterance_norm="cepstral")
