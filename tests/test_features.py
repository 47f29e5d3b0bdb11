import dataclasses
import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asr.features import (
    VTLP_BOUNDARY_HZ,
    FeatureConfig,
    Frontend,
    GlobalNorm,
    LogMel,
    NormStats,
    NormStatsError,
    SpecAugment,
    SpecAugmentConfig,
    StatsAccumulator,
    VtlpConfig,
    compute_stats,
    mask_spans,
    speed_perturb,
    time_warp,
    vtlp_warp,
    warp,
)
from asr.model import lengths_to_mask

CONFIG = FeatureConfig()


def logmel(waveform: torch.Tensor) -> torch.Tensor:
    features, lengths = LogMel(CONFIG)(waveform[None], torch.tensor([waveform.shape[0]]))
    return features[0, : int(lengths[0])]


def test_logmel_matches_librosa_on_real_speech(speech) -> None:
    """Independent implementation: librosa's mel spectrogram with the same settings.

    Tolerance: 1e-3 in log power (0.1 %) wherever the power is above 3e-7 (log > -15);
    below that float32 rounding of near-silent bins dominates both implementations.
    """
    ours = logmel(speech).numpy()
    power = librosa.feature.melspectrogram(
        y=speech.numpy(),
        sr=16000,
        n_fft=400,
        win_length=400,
        hop_length=160,
        window="hann",
        center=False,
        power=2.0,
        n_mels=80,
        fmin=CONFIG.f_min,
        fmax=CONFIG.f_max,
        htk=True,
        norm=None,
    )
    reference = np.log(np.maximum(power, CONFIG.log_floor)).T  # (80, T) -> (T, 80)
    assert ours.shape == reference.shape == (CONFIG.num_frames(speech.shape[0]), 80)
    audible = reference > -15
    assert audible.mean() > 0.5
    assert np.abs(ours - reference)[audible].max() < 1e-3


def test_frame_counts_follow_window_and_hop() -> None:
    assert (CONFIG.win_length, CONFIG.hop_length) == (400, 160)
    assert [CONFIG.num_frames(n) for n in (0, 399, 400, 559, 560, 16000)] == [0, 0, 1, 1, 2, 98]
    waveforms = torch.zeros(3, 16000)
    _, lengths = LogMel(CONFIG)(waveforms, torch.tensor([16000, 560, 100]))
    assert lengths.tolist() == [98, 2, 0]


def test_padding_does_not_change_features(speech) -> None:
    short = speech[:9000]
    batch = torch.nn.utils.rnn.pad_sequence([speech, short], batch_first=True)
    features, lengths = LogMel(CONFIG)(batch, torch.tensor([speech.shape[0], short.shape[0]]))
    torch.testing.assert_close(features[0, : lengths[0]], logmel(speech))
    torch.testing.assert_close(features[1, : lengths[1]], logmel(short))
    assert (features[1, lengths[1] :] == 0).all()


def test_features_are_float32_under_autocast(speech) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = logmel(speech)
    assert features.dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_features_match_cpu(speech) -> None:
    module = LogMel(CONFIG).cuda()
    features, _ = module(speech[None].cuda(), torch.tensor([speech.shape[0]]))
    torch.testing.assert_close(features[0].cpu(), logmel(speech), atol=1e-3, rtol=1e-4)


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


def augment(config: SpecAugmentConfig, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    module = SpecAugment(config)
    module.train()
    return module(features, lengths)


def test_specaugment_does_nothing_in_eval_mode() -> None:
    features = torch.randn(2, 50, 80)
    module = SpecAugment(SpecAugmentConfig())
    module.eval()
    assert module(features, torch.tensor([50, 30])) is features


def test_specaugment_masks_stay_within_bounds_and_real_frames() -> None:
    torch.manual_seed(0)
    config = SpecAugmentConfig(
        freq_masks=2, freq_mask_width=10, time_masks=2, time_mask_width=20, time_mask_max_ratio=0.2
    )
    lengths = torch.tensor([200, 120])
    features = torch.randn(2, 200, 80) + 5  # never 0 before masking
    features[1, 120:] = 0
    for _ in range(20):
        out = augment(config, features, lengths)
        assert (out[1, 120:] == 0).all()
        for b, length in enumerate(lengths.tolist()):
            zero = out[b, :length] == 0  # (L, D)
            masked_bins = zero.all(dim=0).sum()
            masked_frames = zero.all(dim=1).sum()
            assert masked_bins <= 2 * 10
            assert masked_frames <= 2 * min(20, int(0.2 * length))
            assert zero.any()


def test_time_warp_keeps_the_length_and_moves_frames() -> None:
    torch.manual_seed(0)
    features = torch.arange(100, dtype=torch.float32)[None, :, None].repeat(1, 1, 4)
    lengths = torch.tensor([100])
    warped = time_warp(features, lengths, 10)
    assert warped.shape == features.shape
    assert not torch.equal(warped, features)
    assert warped[0, 0, 0] == 0 and warped[0, -1, 0] == 99  # end points stay put
    assert torch.equal(time_warp(features, lengths, 0), features)


def test_mask_spans_stay_within_each_rows_limit_and_width() -> None:
    torch.manual_seed(0)
    limits, widths = torch.tensor([50, 20, 8, 0]), torch.tensor([10, 10, 3, 5])
    seen = torch.zeros(4, 50, dtype=torch.bool)
    for _ in range(200):
        masked = mask_spans(50, limits, widths, count=1)  # one span a row: contiguous
        for row, (limit, width) in enumerate(zip(limits.tolist(), widths.tolist(), strict=True)):
            where = masked[row].nonzero()[:, 0]
            assert len(where) <= width and (where < limit).all()
            if len(where):
                assert where[-1] - where[0] + 1 == len(where)
        seen |= masked
    assert seen[0, :40].any() and seen[0, 40:].any() and not seen[3].any()  # spans land all over a row


def test_warping_a_padded_batch_moves_each_utterances_centre_as_interpolating_it_alone_would() -> None:
    """`warp` stretches [0, c) onto [0, c + s) and [c, L) onto [c + s, L) within each utterance's
    length L, as F.interpolate with aligned corners does for the utterance alone; padding stays."""
    torch.manual_seed(0)
    lengths, centre, shift = torch.tensor([60, 45, 30, 20]), torch.tensor([30, 20, 12, 9]), torch.tensor([5, -4, 0, 1])
    features = torch.randn(4, 60, 3) * lengths_to_mask(lengths, 60)[..., None]
    warped = warp(features, lengths, centre, shift)
    for b, (length, c, s) in enumerate(zip(lengths.tolist(), centre.tolist(), shift.tolist(), strict=True)):
        utterance = features[b, :length].T[None]  # (1, D, L) for interpolate
        left = F.interpolate(utterance[..., :c], size=c + s, mode="linear", align_corners=True)
        right = F.interpolate(utterance[..., c:], size=length - c - s, mode="linear", align_corners=True)
        torch.testing.assert_close(warped[b, :length], torch.cat([left, right], dim=-1)[0].T, atol=1e-5, rtol=1e-5)
        assert (warped[b, length:] == 0).all()
    assert torch.equal(warped[2], features[2])  # no shift, no change


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_the_length_by_the_factor(speech, factor) -> None:
    out = speed_perturb(speech, factor)
    assert abs(out.shape[0] - speech.shape[0] / factor) <= 1
    assert torch.equal(speed_perturb(speech, 1.0), speech)


def test_frontend_normalises_and_augments_only_in_training(speech) -> None:
    features = logmel(speech)
    accumulator = StatsAccumulator()
    accumulator.update(features)
    frontend = Frontend(CONFIG, accumulator.result(), SpecAugmentConfig(time_masks=2, freq_masks=2))
    lengths = torch.tensor([speech.shape[0]])
    frontend.eval()
    normalized, frames = frontend(speech[None], lengths)
    torch.testing.assert_close(normalized[0].mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    frontend.train()
    torch.manual_seed(0)
    augmented, _ = frontend(speech[None], lengths)
    assert frames[0] == features.shape[0] and not torch.equal(augmented, normalized)


def test_statistics_of_audio_far_out_of_range_are_refused(speech) -> None:
    with pytest.raises(NormStatsError, match="mean or variance is not finite"):
        compute_stats([speech * 1e29], FeatureConfig())


def test_vtlp_warp_keeps_zero_and_nyquist_and_is_continuous_and_increasing() -> None:
    frequencies = torch.linspace(0, 8000, 8001)
    warped = vtlp_warp(frequencies, torch.tensor([0.9, 1.0, 1.1]), VTLP_BOUNDARY_HZ)
    assert torch.equal(warped[1], frequencies)
    for row in warped:
        assert row[0] == 0 and abs(float(row[-1]) - 8000) < 1e-2
        steps = row.diff()
        assert (steps > 0).all() and steps.max() < 1.2  # increasing, and no jump at the knee
    assert warped[0, 1000] == pytest.approx(900) and warped[2, 1000] == pytest.approx(1100)


def test_vtlp_factor_one_gives_the_unwarped_features(speech) -> None:
    module, lengths = LogMel(CONFIG), torch.tensor([speech.shape[0]])
    plain, _ = module(speech[None], lengths)
    warped, _ = module(speech[None], lengths, vtlp_factors=torch.tensor([1.0]))
    torch.testing.assert_close(warped, plain, atol=1e-3, rtol=0)


def test_vtlp_moves_a_tone_up_the_filterbank_by_the_factor() -> None:
    tone = torch.sin(2 * torch.pi * 1000 * torch.arange(16000) / 16000)[None]
    module, lengths = LogMel(CONFIG), torch.tensor([16000])
    peaks = []
    for factor in (0.9, 1.0, 1.1):
        features, _ = module(tone, lengths, vtlp_factors=torch.tensor([factor]))
        peaks.append(int(features[0].mean(0).argmax()))
    centres = LogMel(CONFIG).mel.mel_scale.fb.argmax(0)  # (n_mels,) the FFT bin at each filter's peak
    hz = [float(centres[peak]) * 8000 / 200 for peak in peaks]
    assert hz[0] == pytest.approx(900, abs=60) and hz[1] == pytest.approx(1000, abs=60)
    assert hz[2] == pytest.approx(1100, abs=60)


def test_vtlp_of_a_padded_batch_equals_one_utterance_at_a_time(speech) -> None:
    short = speech[: speech.shape[0] // 2]
    batch = torch.stack([speech, F.pad(short, (0, speech.shape[0] - short.shape[0]))])
    lengths, factors = torch.tensor([speech.shape[0], short.shape[0]]), torch.tensor([0.92, 1.07])
    together, frames = LogMel(CONFIG)(batch, lengths, vtlp_factors=factors)
    for b, waveform in enumerate((speech, short)):
        alone, _ = LogMel(CONFIG)(waveform[None], lengths[b : b + 1], vtlp_factors=factors[b : b + 1])
        torch.testing.assert_close(together[b, : int(frames[b])], alone[0], atol=1e-4, rtol=1e-4)


def test_frontend_perturbs_the_vocal_tract_only_in_training(speech) -> None:
    stats = compute_stats([speech], CONFIG)
    lengths = torch.tensor([speech.shape[0]])
    plain, perturbed = Frontend(CONFIG, stats), Frontend(CONFIG, stats, vtlp=VtlpConfig(max_warp=0.1))
    perturbed.eval()
    torch.testing.assert_close(perturbed(speech[None], lengths)[0], plain(speech[None], lengths)[0])
    perturbed.train()
    torch.manual_seed(0)
    assert not torch.allclose(perturbed(speech[None], lengths)[0], plain(speech[None], lengths)[0], atol=1e-2)


@pytest.mark.parametrize("settings", [{"max_warp": -0.1}, {"max_warp": 0.5}, {"boundary_hz": 8000.0}])
def test_bad_vtlp_settings_are_refused(settings) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        VtlpConfig(**settings)


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
