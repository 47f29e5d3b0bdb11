"""Reading audio files: any format soundfile reads, any rate, any channel count.

Everything downstream works on 16 kHz mono float32 waveforms in [-1, 1].
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile
import soxr
import torch

from asr.errors import UserError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The sample rate, in Hz, of every waveform the toolkit computes on."""

MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 768000
"""Sample rates outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] Hz are refused: no speech recording has them."""

LOUD_SAMPLE = 2.0
"""Float samples beyond +-LOUD_SAMPLE are far outside [-1, 1]: the file gets a warning (once)."""

MAX_SAMPLE = 1e10
"""Float samples beyond +-MAX_SAMPLE are no recording: 32-bit integers stored as floats reach 2.1e9, and
the log-mel features overflow near 1e18 (the transcript would be empty). Such audio is refused."""

CANCELLED_DB = 20.0
"""Channels whose mean is this many dB below their own level cancel out (anti-phase stereo): the loudest
channel is taken instead of the mean, with a warning."""

MAX_OVERSHOOT = 0.5
"""Seconds a span may run past its recording's end and be cut back to it (Kaldi's extract-segments allows 0.5)."""

AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au"})
"""File name endings taken for audio when a folder is searched."""


class AudioError(UserError):
    """An audio file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: `frames` samples per channel at `sample_rate` Hz."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied (the file is not readable)")
    if not path.is_file():  # /dev/zero, a pipe: read twice (header, then samples), and never ending
        raise AudioError(f"{path}: not a regular file (a device or a pipe); give an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def check_sample_rate(rate: int, name: str) -> None:
    """Raise `AudioError` naming `name` when `rate` (Hz) is outside what speech recordings use."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{name}: sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz; "
            "is the header damaged, or is it not a speech recording?"
        )


_warned_loud: set[str] = set()
_warned_cancelled: set[str] = set()


def check_level(waveform: torch.Tensor, name: str) -> None:
    """Warn, once per `name` in a process, when samples lie far outside [-1, 1]: integer values
    stored as floats, or a broken file; the transcript of such audio is unreliable. Raise `AudioError`
    beyond `MAX_SAMPLE`, where no transcript can come out."""
    peak = float(waveform.abs().max()) if waveform.numel() else 0.0
    if peak > MAX_SAMPLE:
        raise AudioError(
            f"{name}: samples reach {peak:.3g}, beyond any recording's range (integer audio stored as float "
            f"stays within {MAX_SAMPLE:.0e}); is the file damaged?"
        )
    if peak > LOUD_SAMPLE and name not in _warned_loud:
        _warned_loud.add(name)
        log.warning("%s: samples reach %.3g, far outside [-1, 1]; is it integer audio stored as float?", name, peak)


def check_finite(waveform: torch.Tensor, path: Path) -> None:
    """Raise `AudioError` for NaN samples, or samples that read as infinite (a float64 file's 1e300
    is past float32's 3.4e38 as it is read)."""
    if torch.isfinite(waveform).all():
        return
    if torch.isnan(waveform).any():
        raise AudioError(f"{path}: contains NaN samples")
    raise AudioError(
        f"{path}: samples beyond any recording's range (infinite, or past float32's 3.4e38); is the file damaged?"
    )


def _check_wav_data_size(path: Path) -> None:
    """Raise if a RIFF/WAVE file holds fewer data bytes than its header declares.

    libsndfile quietly shortens such files, so a cut-off download would pass unseen.
    """
    with path.open("rb") as handle:
        header = handle.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return
        while chunk := handle.read(8):
            if len(chunk) < 8:
                return
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                available = path.stat().st_size - handle.tell()
                if size not in (0, 0xFFFFFFFF) and size > available:  # 0 / -1: size unknown (streamed)
                    raise AudioError(
                        f"{path}: truncated: the header declares {size} bytes of samples, the file holds {available}"
                    )
                return
            handle.seek(size + size % 2, 1)  # chunks are padded to an even size


def _describe(error: soundfile.LibsndfileError) -> str:
    return str(error.error_string).rstrip(".").lower()


def audio_info(path: str | Path) -> AudioInfo:
    """Read the header of `path` without decoding the samples.

    Raises `AudioError` for a missing, empty, non-audio or zero-length file.
    """
    path = Path(path)
    _check_file(path)
    try:
        info = soundfile.info(os.fsencode(path))
    except soundfile.LibsndfileError as error:
        raise AudioError(f"{path}: not a readable audio file ({_describe(error)})") from None
    except (RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: not a readable audio file ({error})") from None
    if info.frames <= 0:
        size = path.stat().st_size
        raise AudioError(f"{path}: no samples in its {size} bytes; is it an empty recording or a truncated file?")
    check_sample_rate(info.samplerate, str(path))
    return AudioInfo(frames=info.frames, sample_rate=info.samplerate, channels=info.channels)


def check_span(path: str | Path, info: AudioInfo, start: float, end: float) -> None:
    """Raise `AudioError` naming `path` when the span from `start` to `end` seconds starts at or past
    the end of the recording `info` describes, or ends more than `MAX_OVERSHOOT` seconds past it: read
    as it is, it would be empty or cut short."""
    if start >= info.duration or end > info.duration + MAX_OVERSHOOT:
        raise AudioError(f"{path}: {start:g} to {end:g} s lies past the recording's end ({info.duration:.2f} s)")


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling with libsoxr's very-high-quality filter, on the CPU.

    (N,) or (C, N) float32 at `orig_rate` Hz -> (round(N * new_rate / orig_rate),) or (C, ...)
    at `new_rate` Hz. Time and memory grow with the number of samples only, not with the
    rates' common factor (44,101 Hz costs what 44,100 Hz costs).
    """
    if orig_rate == new_rate:
        return waveform
    samples = waveform.detach().cpu().float().numpy()
    if samples.ndim == 2:  # (C, N) -> soxr's (N, C) and back
        return torch.from_numpy(soxr.resample(samples.T, orig_rate, new_rate, quality="VHQ").T.copy())
    return torch.from_numpy(soxr.resample(samples, orig_rate, new_rate, quality="VHQ"))


def mix_down(channels: torch.Tensor, name: str) -> torch.Tensor:
    """(N, C) float32 samples -> (N,): the channel mean; or, when the channels cancel out in it
    (anti-phase stereo: the mean `CANCELLED_DB` or more below their level), the loudest channel,
    with a warning once per `name` in a process."""
    mean = channels.mean(dim=1)
    power = channels.double().square().mean(dim=0)  # (C,) each channel's level
    level, mixed = float(power.mean()), float(mean.double().square().mean())
    cancelled = math.isfinite(level) and level > 1e-10 and mixed <= level * 10 ** (-CANCELLED_DB / 10)
    if channels.shape[1] == 1 or not cancelled:
        return mean
    loudest = int(power.argmax())
    if name not in _warned_cancelled:
        _warned_cancelled.add(name)
        log.warning(
            "%s: its channels cancel out when averaged (anti-phase stereo?); using channel %d alone", name, loudest + 1
        )
    return channels[:, loudest].contiguous()


def load_audio(path: str | Path, start: float = 0.0, duration: float | None = None) -> tuple[torch.Tensor, int]:
    """Decode `path` to a mono float32 waveform (N,) at `SAMPLE_RATE`.

    `start` and `duration` (seconds) read only that span, seeking to it: a long file
    need not be decoded whole. Channels are averaged (`mix_down`); other sample rates are resampled.
    Returns the waveform and `SAMPLE_RATE`. Raises `AudioError` naming the file for a
    missing file, a folder, an empty file, a file that is not audio, zero samples,
    samples beyond `MAX_SAMPLE`, or truncated/corrupt data.
    """
    path = Path(path)
    info = audio_info(path)
    _check_wav_data_size(path)
    first = min(round(start * info.sample_rate), info.frames)
    count = info.frames - first if duration is None else min(round(duration * info.sample_rate), info.frames - first)
    try:
        with soundfile.SoundFile(os.fsencode(path)) as handle:
            if first:
                handle.seek(first)
            samples = handle.read(count, dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:
        raise AudioError(f"{path}: corrupt audio data ({_describe(error)})") from None
    except (RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: corrupt audio data ({error})") from None
    if samples.shape[0] == 0 and count > 0:
        raise AudioError(f"{path}: 0 samples could be decoded; is the file truncated?")
    if samples.shape[0] < count:
        got = first + samples.shape[0]
        raise AudioError(f"{path}: truncated: the header promises {info.frames} samples, only {got} could be read")
    waveform = mix_down(torch.from_numpy(samples), str(path))
    check_finite(waveform, path)
    check_level(waveform, str(path))
    return resample(waveform, info.sample_rate, SAMPLE_RATE), SAMPLE_RATE


def audio_blocks(path: str | Path, block_seconds: float = 30.0) -> Iterator[tuple[torch.Tensor, int]]:
    """The whole file as consecutive mono blocks (N,) at its own sample rate, `block_seconds` each.

    Memory stays at one block whatever the file's length. Raises `AudioError` like
    `load_audio`, also when the file ends before its header says.
    """
    path = Path(path)
    info = audio_info(path)
    _check_wav_data_size(path)
    size = max(1, round(block_seconds * info.sample_rate))
    read = 0
    try:
        with soundfile.SoundFile(os.fsencode(path)) as handle:
            while read < info.frames:
                samples = handle.read(min(size, info.frames - read), dtype="float32", always_2d=True)
                if samples.shape[0] == 0:
                    break
                read += samples.shape[0]
                block = mix_down(torch.from_numpy(samples), str(path))
                check_finite(block, path)
                yield block, info.sample_rate
    except soundfile.LibsndfileError as error:
        raise AudioError(f"{path}: corrupt audio data ({_describe(error)})") from None
    except (RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: corrupt audio data ({error})") from None
    if read < info.frames:
        raise AudioError(f"{path}: truncated: the header promises {info.frames} samples, only {read} could be read")
