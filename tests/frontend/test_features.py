"""Log-mel features (`asr.frontend.features`): librosa's values, frame counts, padding invariance,
float32 under autocast, and vocal-tract-length perturbation."""

import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asr.frontend.features import VTLP_BOUNDARY_HZ, FeatureConfig, LogMel, VtlpConfig, vtlp_warp

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


@pytest.mark.parametrize("settings", [{"max_warp": -0.1}, {"max_warp": 0.5}, {"boundary_hz": 8000.0}])
def test_bad_vtlp_settings_are_refused(settings) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        VtlpConfig(**settings)
