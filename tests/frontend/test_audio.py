from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.frontend.audio import SAMPLE_RATE, AudioError, audio_blocks, audio_info, load_audio, resample


def write(path: Path, waveform: torch.Tensor, rate: int, channels: int) -> Path:
    """Write `waveform` (N,) at 16 kHz resampled to `rate` with `channels` identical channels."""
    samples = resample(waveform, SAMPLE_RATE, rate).numpy()
    soundfile.write(path, np.repeat(samples[:, None], channels, axis=1), rate)
    return path


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    n = min(a.shape[0], b.shape[0])
    return float(torch.corrcoef(torch.stack([a[:n], b[:n]]))[0, 1])


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_lossless_files_load_as_16k_mono_float32(tmp_path, speech, rate, channels, suffix) -> None:
    path = write(tmp_path / f"x{suffix}", speech, rate, channels)
    waveform, sample_rate = load_audio(path)
    assert sample_rate == SAMPLE_RATE and waveform.dtype == torch.float32 and waveform.dim() == 1
    assert abs(waveform.shape[0] - speech.shape[0]) <= 1
    # 8 kHz loses the band above 4 kHz; the rest must survive two resamplings
    assert correlation(waveform, speech) > (0.9 if rate == 8000 else 0.999)


@pytest.mark.parametrize("suffix", [".ogg", ".mp3"])
def test_lossy_files_load_as_16k_mono(tmp_path, speech, suffix) -> None:
    path = write(tmp_path / f"x{suffix}", speech, 44100, 2)
    waveform, sample_rate = load_audio(path)
    assert sample_rate == SAMPLE_RATE and waveform.dim() == 1
    assert abs(waveform.shape[0] - speech.shape[0]) < 0.02 * speech.shape[0]
    assert waveform.square().mean().sqrt() == pytest.approx(float(speech.square().mean().sqrt()), rel=0.2)


def test_channels_are_averaged(tmp_path, speech) -> None:
    stereo = np.stack([speech.numpy(), np.zeros_like(speech.numpy())], axis=1)
    soundfile.write(tmp_path / "stereo.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    waveform, _ = load_audio(tmp_path / "stereo.wav")
    torch.testing.assert_close(waveform, speech / 2)


def test_channels_that_cancel_out_give_the_loudest_one_and_a_warning(tmp_path, speech, caplog) -> None:
    """Anti-phase stereo averages to silence: the transcript would be empty without a word."""
    stereo = np.stack([-0.9 * speech.numpy(), speech.numpy()], axis=1)
    soundfile.write(tmp_path / "anti.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    waveform, _ = load_audio(tmp_path / "anti.wav")
    torch.testing.assert_close(waveform, speech)
    blocks = [block for block, _ in audio_blocks(tmp_path / "anti.wav", block_seconds=0.5)]
    torch.testing.assert_close(torch.cat(blocks), speech)
    warnings = [r.getMessage() for r in caplog.records if "cancel out" in r.getMessage()]
    assert warnings == [f"{tmp_path / 'anti.wav'}: its channels cancel out when averaged (anti-phase stereo?); "
                        "using channel 2 alone"]  # fmt: skip


def test_16k_mono_wav_is_read_unchanged(tmp_path, speech) -> None:
    soundfile.write(tmp_path / "same.wav", speech.numpy(), SAMPLE_RATE, subtype="FLOAT")
    waveform, _ = load_audio(tmp_path / "same.wav")
    assert torch.equal(waveform, speech)


def test_audio_info_reads_the_header(tmp_path, speech) -> None:
    path = write(tmp_path / "x.flac", speech, 22050, 2)
    info = audio_info(path)
    assert (info.sample_rate, info.channels) == (22050, 2)
    assert info.duration == pytest.approx(speech.shape[0] / SAMPLE_RATE, abs=1e-3)


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_bad(kind: str, folder: Path, speech: torch.Tensor) -> Path:
    if kind == "missing":
        return folder / "missing.wav"
    if kind == "folder":
        (folder / "a_folder.wav").mkdir()
        return folder / "a_folder.wav"
    if kind == "empty":
        (folder / "empty.wav").write_bytes(b"")
        return folder / "empty.wav"
    if kind == "device":
        return Path("/dev/zero")  # it was called an "empty file (0 bytes)"
    if kind == "text":
        (folder / "notes.wav").write_text("this is a text file, not audio\n")
        return folder / "notes.wav"
    if kind == "zero samples":
        soundfile.write(folder / "zero.wav", np.zeros(0, dtype=np.float32), SAMPLE_RATE)
        return folder / "zero.wav"
    suffix = kind.split()[-1]  # "truncated wav" -> "wav"
    return truncate(write(folder / f"cut.{suffix}", speech, SAMPLE_RATE, 1))


BAD = {
    "missing": "no such file",
    "folder": "is a folder",
    "empty": "empty file",
    "device": "not a regular file (a device or a pipe)",
    "text": "not a readable audio file",
    "zero samples": "no samples",
    "truncated wav": "truncated",
    "truncated flac": "corrupt",
    "truncated ogg": "no samples",
    "truncated mp3": "truncated",
}


@pytest.mark.parametrize("kind", BAD)
def test_bad_files_raise_one_line_audio_errors_naming_the_file(tmp_path, speech, kind) -> None:
    path = make_bad(kind, tmp_path, speech)
    with pytest.raises(AudioError) as caught:
        load_audio(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and BAD[kind] in message and "\n" not in message


def test_non_finite_samples_are_rejected(tmp_path) -> None:
    samples = np.zeros(1000, dtype=np.float32)
    samples[10] = np.nan
    soundfile.write(tmp_path / "nan.wav", samples, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: contains NaN samples"):
        load_audio(tmp_path / "nan.wav")
    huge = np.zeros(1000, dtype=np.float64)
    huge[10] = 1e300  # past float32 as it is read: it was called "NaN or infinite"
    soundfile.write(tmp_path / "huge.wav", huge, SAMPLE_RATE, subtype="DOUBLE")
    with pytest.raises(AudioError, match=r"huge.wav: samples beyond any recording's range \(infinite, or past"):
        load_audio(tmp_path / "huge.wav")


def test_a_span_reads_the_same_samples_as_the_whole_file(tmp_path, speech) -> None:
    soundfile.write(tmp_path / "speech.flac", speech.numpy(), 16000)
    whole, _ = load_audio(tmp_path / "speech.flac")
    span, _ = load_audio(tmp_path / "speech.flac", start=0.5, duration=0.75)
    torch.testing.assert_close(span, whole[8000:20000])
    tail, _ = load_audio(tmp_path / "speech.flac", start=1.0, duration=100.0)  # past the end: what there is
    torch.testing.assert_close(tail, whole[16000:])


def test_blocks_join_into_the_whole_file_and_a_truncated_one_fails(tmp_path, speech) -> None:
    soundfile.write(tmp_path / "speech.wav", torch.stack([speech, speech], 1).numpy(), 16000)
    blocks = list(audio_blocks(tmp_path / "speech.wav", block_seconds=0.3))
    assert all(rate == 16000 for _, rate in blocks) and len(blocks) == 7
    torch.testing.assert_close(torch.cat([b for b, _ in blocks]), speech, atol=1e-4, rtol=0)
    data = (tmp_path / "speech.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="cut.wav: truncated"):
        list(audio_blocks(tmp_path / "cut.wav"))


@pytest.mark.parametrize("rate", [44101, 22254, 96001, 384000])
def test_rates_that_share_no_factor_with_16k_load_like_any_other(tmp_path, speech, rate) -> None:
    """A resampler whose table grows with the rates' common factor took gigabytes at these rates."""
    waveform, _ = load_audio(write(tmp_path / "x.wav", speech, rate, 1))
    assert abs(waveform.shape[0] - speech.shape[0]) <= 1
    assert correlation(waveform, speech) > 0.999


@pytest.mark.parametrize("rate", [1, 3999, 768001])
def test_absurd_sample_rates_are_refused_in_one_line(tmp_path, rate) -> None:
    path = tmp_path / "odd.wav"
    soundfile.write(path, np.zeros(max(rate, 10), dtype=np.float32), rate)
    with pytest.raises(AudioError, match=f"odd.wav: sample rate {rate} Hz is outside 4000-768000 Hz"):
        audio_info(path)


def test_float_audio_far_outside_one_gets_one_warning(tmp_path, speech, caplog) -> None:
    path = tmp_path / "int-as-float.wav"
    soundfile.write(path, (speech * 32767).numpy(), SAMPLE_RATE, subtype="FLOAT")
    load_audio(path)
    load_audio(path, 0.1, 0.5)
    warnings = [r.getMessage() for r in caplog.records if "far outside [-1, 1]" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f"{path}: samples reach")


def test_float_audio_beyond_any_recording_s_range_is_refused(tmp_path, speech) -> None:
    """At 1e29 the features overflow: the transcript came out empty, with exit 0."""
    path = tmp_path / "huge.wav"
    soundfile.write(path, (speech / speech.abs().max() * 1e29).numpy(), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=f"{path}: samples reach 1e\\+29, beyond any recording's range"):
        load_audio(path)


def test_an_unreadable_file_says_permission_denied(tmp_path, speech, monkeypatch) -> None:
    path = write(tmp_path / "x.flac", speech, SAMPLE_RATE, 1)
    monkeypatch.setattr("asr.frontend.audio.os.access", lambda p, mode: False)  # root reads everything: pretend
    with pytest.raises(AudioError, match="x.flac: permission denied"):
        audio_info(path)
