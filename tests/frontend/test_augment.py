from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.config import ConfigError, from_dict
from asr.frontend.augment import (
    EARLY_REFLECTIONS,
    WALL_MARGIN,
    AugmentConfig,
    AugmentError,
    Room,
    augment,
    band_limit,
    codec_round_trip,
    colored_noise,
    room_impulse_response,
    sample_room,
    shift_pitch,
    speed_perturb,
)

REVERB = AugmentConfig(reverb_prob=1.0)
NOISE = AugmentConfig(noise_prob=1.0)
GAIN = AugmentConfig(gain_prob=1.0)
PITCH = AugmentConfig(pitch_prob=1.0)
CHANNEL = AugmentConfig(telephone_prob=1.0, codec_prob=1.0)
EVERYTHING = AugmentConfig(
    reverb_prob=1.0, noise_prob=1.0, gain_prob=1.0, pitch_prob=1.0, telephone_prob=1.0, codec_prob=1.0
)
CONFIGS = {"reverb": REVERB, "noise": NOISE, "gain": GAIN, "pitch": PITCH, "channel": CHANNEL, "everything": EVERYTHING}


def power_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def decay_time(response: np.ndarray) -> float:
    """RT60 in seconds from Schroeder's backward-integrated energy, fitted between -5 and -25 dB (T20)."""
    energy = np.cumsum(response[::-1] ** 2)[::-1]
    level = 10 * np.log10(energy / energy[0])
    first, last = np.argmax(level <= -5), np.argmax(level <= -25)
    slope = np.polyfit(np.arange(first, last) / 16000, level[first:last], 1)[0]  # dB per second
    return -60 / slope


def strongest_lag(dry: np.ndarray, wet: np.ndarray, max_lag: int) -> int:
    """The lag in samples (positive: `wet` later) within +-max_lag at which the cross-correlation peaks."""
    size = 2 * len(dry)
    correlation = np.fft.irfft(np.fft.rfft(wet, size) * np.conj(np.fft.rfft(dry, size)), size)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]  # circular order: 0..max_lag, then negative
    return int(lags[np.argmax(np.r_[correlation[: max_lag + 1], correlation[-max_lag:]])])


@pytest.mark.parametrize("name", CONFIGS)
def test_output_keeps_shape_dtype_and_length(speech, name) -> None:
    for waveform in (speech, speech[:12345]):
        augmented = augment(waveform, CONFIGS[name], np.random.default_rng(0))
        assert augmented.shape == waveform.shape
        assert augmented.dtype == torch.float32
        assert torch.isfinite(augmented).all()


@pytest.mark.parametrize("name", CONFIGS)
def test_same_seed_gives_same_output_and_another_seed_another(speech, name) -> None:
    first = augment(speech, CONFIGS[name], np.random.default_rng(7))
    again = augment(speech, CONFIGS[name], np.random.default_rng(7))
    other = augment(speech, CONFIGS[name], np.random.default_rng(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_input_is_left_untouched(speech) -> None:
    copy = speech.clone()
    augment(speech, EVERYTHING, np.random.default_rng(0))
    assert torch.equal(speech, copy)


def test_all_off_config_returns_the_input_unchanged(speech) -> None:
    assert augment(speech, AugmentConfig(), np.random.default_rng(0)) is speech
    wide = AugmentConfig(rt60=(0.1, 2.0), snr_db=(-5.0, 0.0), gain_db=(-30.0, 30.0))
    assert augment(speech, wide, np.random.default_rng(0)) is speech


def test_one_probability_does_not_change_the_other_augmentations(speech) -> None:
    """Each augmentation has its own generator: adding a chance of reverb leaves the noise of
    the utterances that get no reverb exactly as it was."""
    with_reverb = AugmentConfig(noise_prob=1.0, reverb_prob=0.5)
    same = 0
    for seed in range(10):
        noisy = augment(speech, NOISE, np.random.default_rng(seed))
        same += torch.equal(noisy, augment(speech, with_reverb, np.random.default_rng(seed)))
    assert 0 < same < 10


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_noise_is_added_at_an_snr_within_the_range(speech, color) -> None:
    config = AugmentConfig(noise_prob=1.0, snr_db=(5.0, 15.0), noise_colors=(color,))
    snrs = []
    for seed in range(8):
        noisy = augment(speech, config, np.random.default_rng(seed))
        snrs.append(power_db(speech.numpy()) - power_db((noisy - speech).numpy()))
    assert all(5.0 - 1e-3 <= snr <= 15.0 + 1e-3 for snr in snrs), snrs
    assert max(snrs) - min(snrs) > 2  # drawn, not fixed


@pytest.mark.parametrize(("color", "db_per_octave"), [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_noise_colors_fall_by_their_slope_per_octave(color, db_per_octave) -> None:
    noise = colored_noise(64000, color, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(64000, 1 / 16000)
    octaves = [power[(frequencies >= f) & (frequencies < 2 * f)].mean() for f in (250, 500, 1000, 2000)]
    slopes = np.diff(10 * np.log10(octaves))
    # a band-averaged power law: the mean over [f, 2f) of f^-a steps by exactly the slope per octave
    np.testing.assert_allclose(slopes, db_per_octave, atol=0.5)


def write_tone(path: Path, seconds: float, rate: int) -> None:
    t = np.arange(round(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), rate)


@pytest.mark.parametrize("seconds", [0.4, 5.0])
def test_noise_dir_recordings_are_mixed_in_at_the_snr(speech, tmp_path, seconds) -> None:
    """A 440 Hz tone recording, shorter (repeated) or longer (cut) than the speech, at 8 kHz (resampled)."""
    (tmp_path / "noise").mkdir()
    write_tone(tmp_path / "noise" / "tone.wav", seconds, 8000)
    (tmp_path / "noise" / "notes.txt").write_text("not audio")
    config = AugmentConfig(
        noise_prob=1.0, snr_db=(0.0, 10.0), noise_dir=str(tmp_path), noise_colors=(), recorded_noise_prob=1.0
    )
    noisy = augment(speech, config, np.random.default_rng(3))
    added = (noisy - speech).numpy()
    assert noisy.shape == speech.shape
    assert 0.0 - 1e-3 <= power_db(speech.numpy()) - power_db(added) <= 10.0 + 1e-3
    spectrum = np.abs(np.fft.rfft(added))
    assert abs(np.fft.rfftfreq(len(added), 1 / 16000)[spectrum.argmax()] - 440) < 2


def test_noise_dir_without_audio_is_an_error_naming_it(speech, tmp_path) -> None:
    for folder in (tmp_path, tmp_path / "missing"):
        config = AugmentConfig(noise_prob=1.0, noise_dir=str(folder), recorded_noise_prob=1.0)
        with pytest.raises(AugmentError, match=str(folder)):
            augment(speech, config, np.random.default_rng(0))


def test_reverb_keeps_length_level_and_alignment(speech) -> None:
    for seed in range(3):
        wet = augment(speech, REVERB, np.random.default_rng(seed)).numpy()
        dry = speech.numpy()
        assert wet.shape == dry.shape
        assert abs(power_db(wet) - power_db(dry)) < 1e-3
        assert np.corrcoef(wet, dry)[0, 1] > 0.3
        assert strongest_lag(dry, wet, 400) == 0  # speech not delayed beyond the direct path


@pytest.mark.parametrize("rt60", [0.3, 0.9])
def test_impulse_response_starts_with_the_direct_path_and_its_tail_decays_at_rt60(rt60) -> None:
    room = Room(size=(6.0, 5.0, 3.0), source=(2.0, 3.0, 1.5), microphone=(4.0, 2.0, 1.2), rt60=rt60)
    response = room_impulse_response(room, np.random.default_rng(0))
    assert response[0] == 1.0
    assert len(response) >= rt60 * 16000
    tail = response[round(EARLY_REFLECTIONS * 16000) + 1 :]
    assert decay_time(tail) == pytest.approx(rt60, rel=0.05)


def test_farther_sources_sound_more_reverberant() -> None:
    """The direct-to-reverberant energy ratio falls as the source moves away from the microphone."""
    ratios = []
    for x in (1.5, 2.5, 4.0, 5.5):
        room = Room(size=(7.0, 5.0, 3.0), source=(x, 2.5, 1.5), microphone=(1.0, 2.5, 1.5), rt60=0.5)
        response = room_impulse_response(room, np.random.default_rng(0))
        ratios.append(10 * np.log10(1 / np.sum(response[1:] ** 2)))
    assert all(np.diff(ratios) < 0), ratios


def test_rooms_keep_their_ranges_and_wall_margin() -> None:
    config = AugmentConfig(room_size=(3.0, 5.0), room_height=(2.5, 3.0), source_distance=(1.0, 2.0), rt60=(0.3, 0.6))
    rng = np.random.default_rng(0)
    distances = []
    for _ in range(50):
        room = sample_room(config, rng)
        size = np.array(room.size)
        assert 3.0 <= size[0] <= 5.0 and 3.0 <= size[1] <= 5.0 and 2.5 <= size[2] <= 3.0
        assert 0.3 <= room.rt60 <= 0.6
        for position in (np.array(room.source), np.array(room.microphone)):
            assert (position >= WALL_MARGIN - 1e-9).all() and (position <= size - WALL_MARGIN + 1e-9).all()
        distances.append(np.linalg.norm(np.subtract(room.source, room.microphone)))
    assert max(distances) <= 2.0 + 1e-9
    assert np.mean(np.array(distances) >= 1.0 - 1e-9) > 0.9  # nearer only when the room leaves no space


def test_gain_scales_by_a_factor_within_the_db_range(speech) -> None:
    config = AugmentConfig(gain_prob=1.0, gain_db=(-6.0, 3.0))
    for seed in range(5):
        louder = augment(speech, config, np.random.default_rng(seed))
        gain_db = power_db(louder.numpy()) - power_db(speech.numpy())
        assert -6.0 - 1e-3 <= gain_db <= 3.0 + 1e-3
        torch.testing.assert_close(louder, speech * 10 ** (gain_db / 20))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reverb_prob", 1.5),
        ("noise_prob", -0.1),
        ("gain_prob", float("nan")),
        ("recorded_noise_prob", 2.0),
        ("rt60", (0.8, 0.2)),
        ("rt60", (0.0, 0.5)),
        ("room_size", (1.0, 5.0)),
        ("room_height", (3.0, 2.5)),
        ("source_distance", (0.0, 1.0)),
        ("snr_db", (20.0, 10.0)),
        ("gain_db", (-100.0, 0.0)),
        ("noise_colors", ("pink", "purple")),
        ("noise_dir", ""),
        ("noise_colors", ()),
        ("pitch_prob", 1.1),
        ("babble_prob", 2.0),
        ("babble_talkers", (0, 3)),
        ("babble_talkers", (5, 3)),
        ("babble_snr_db", (30.0, 10.0)),
        ("pitch_semitones", (-20.0, 0.0)),
        ("telephone_prob", -1.0),
        ("telephone_band", (3400.0, 300.0)),
        ("codec_prob", 2.0),
        ("codec_compression", (0.5, 1.0)),
        ("codecs", ("aac",)),
        ("codecs", ()),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(field, value) -> None:
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})


def test_config_loads_from_plain_yaml_values() -> None:
    config = from_dict(AugmentConfig, {"noise_prob": 0.5, "snr_db": [0, 20], "noise_colors": ["pink", "brown"]})
    assert config == AugmentConfig(noise_prob=0.5, snr_db=(0.0, 20.0), noise_colors=("pink", "brown"))
    with pytest.raises(ConfigError, match="noise_colors"):
        from_dict(AugmentConfig, {"noise_colors": ["purple"]})


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), d=1 / 16000)[spectrum.argmax()])


@pytest.mark.parametrize("semitones", [-3.0, 2.0, 12.0])
def test_a_pitch_shift_moves_a_tone_by_its_semitones_and_keeps_the_length(semitones) -> None:
    tone = np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
    shifted = shift_pitch(tone, semitones)
    assert len(shifted) == len(tone)
    assert dominant_hz(shifted[2000:-2000]) == pytest.approx(220 * 2 ** (semitones / 12), rel=0.02)


def test_the_telephone_band_removes_what_a_telephone_does_not_pass(speech) -> None:
    samples = speech.numpy().astype(np.float64)
    narrow = band_limit(samples, 300.0, 3400.0)
    frequencies = np.fft.rfftfreq(len(samples), d=1 / 16000)
    before, after = np.abs(np.fft.rfft(samples)), np.abs(np.fft.rfft(narrow))
    outside = (frequencies < 300) | (frequencies > 3400)
    assert after[outside].max() < 1e-9 * before.max()
    np.testing.assert_allclose(after[~outside], before[~outside], rtol=1e-6, atol=1e-9 * before.max())


@pytest.mark.parametrize("codec", ["mp3", "opus"])
def test_a_codec_round_trip_keeps_length_alignment_level_and_most_of_the_signal(speech, codec) -> None:
    samples = speech.numpy().astype(np.float64) * 4.0  # beyond [-1, 1]: scaled for the encoder and back
    decoded = codec_round_trip(samples, codec, 0.9)
    assert len(decoded) == len(samples)
    assert abs(strongest_lag(samples, decoded, 2000)) <= 2
    assert abs(power_db(decoded) - power_db(samples)) < 1.0
    error_db = power_db(samples) - power_db(decoded - samples)
    assert 3.0 < error_db < 60.0  # lossy, but the same speech


def test_a_smaller_codec_setting_loses_more(speech) -> None:
    samples = speech.numpy().astype(np.float64)
    errors = [power_db(codec_round_trip(samples, "opus", level) - samples) for level in (0.3, 0.95)]
    assert errors[0] < errors[1]


def tone_talker(rng: np.random.Generator) -> np.ndarray:
    """Another talker for babble: a second of a 1 kHz tone at a random level."""
    return rng.uniform(0.1, 1.0) * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)


def test_babble_of_other_recordings_is_mixed_in_at_the_snr(speech) -> None:
    config = AugmentConfig(babble_prob=1.0, babble_snr_db=(10.0, 20.0), babble_talkers=(2, 4))
    for seed in range(4):
        noisy = augment(speech, config, np.random.default_rng(seed), tone_talker)
        assert torch.equal(noisy, augment(speech, config, np.random.default_rng(seed), tone_talker))
        crowd = (noisy - speech).numpy()
        assert 10.0 - 1e-3 <= power_db(speech.numpy()) - power_db(crowd) <= 20.0 + 1e-3
        assert dominant_hz(crowd) == pytest.approx(1000, abs=5)


def test_babble_without_recordings_to_make_it_of_is_refused(speech) -> None:
    with pytest.raises(ValueError, match="babble_prob needs other recordings"):
        augment(speech, AugmentConfig(babble_prob=0.5), np.random.default_rng(0))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_the_length_by_the_factor(speech, factor) -> None:
    out = speed_perturb(speech, factor)
    assert abs(out.shape[0] - speech.shape[0] / factor) <= 1
    assert torch.equal(speed_perturb(speech, 1.0), speech)
