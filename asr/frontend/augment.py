"""Waveform augmentation for training: speed, pitch, room reverberation, additive noise, babble, gain,
and the channel (telephone band, lossy codec).

`augment(waveform, config, rng)` applies each augmentation with its own probability, in the
order a recording would: the talker's pitch, the room (reverberation), then the noise and the
babble of other talkers (other training utterances) around the microphone, the recording level
(gain), and last the channel it went through: a telephone's band and a lossy codec (MP3 or Opus,
encoded and decoded by libsndfile). It is a pure function of its inputs, so a data loader that
seeds `rng` from (seed, epoch, utterance index) gives a resumed run the same data as an
uninterrupted one. Everything is off by default; recipes switch it on.

Noise is generated (white, pink or brown) or, with `noise_dir`, cut from a folder of noise
recordings such as MUSAN's `noise/`. Room impulse responses are simulated: the image
method (Allen & Berkley 1979) for the early reflections of a shoebox room, then noise
decaying exponentially at the room's reverberation time for the diffuse tail, with the
tail's energy from statistical room acoustics (Kuttruff, "Room Acoustics", ch. 5);
absorption is frequency independent and follows from the drawn RT60 by Eyring's formula.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import librosa
import numpy as np
import soundfile
import torch

from asr.errors import UserError
from asr.frontend.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioInfo, audio_info, load_audio, resample

Codec = Literal["mp3", "opus"]
CODECS: tuple[Codec, ...] = ("mp3", "opus")
_SOUNDFILE_FORMATS: dict[str, tuple[str, str]] = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}
NoiseColor = Literal["white", "pink", "brown"]
NOISE_COLORS: tuple[NoiseColor, ...] = ("white", "pink", "brown")
_COLOR_EXPONENTS: dict[str, float] = {"white": 0.0, "pink": 0.5, "brown": 1.0}
"""Amplitude falls as frequency**-exponent: 0, 3 and 6 dB per octave."""

SPEED_OF_SOUND = 343.0
"""Metres per second, in air at 20 degrees C."""
EARLY_REFLECTIONS = 0.05
"""Seconds after the direct path during which reflections are computed by the image method;
after that the impulse response is a diffuse tail of decaying noise."""
WALL_MARGIN = 0.5
"""Metres that the source and the microphone keep from every wall."""
MIN_ROOM_SIZE = 2.0
"""Metres: the smallest room side, leaving at least 1 m between the wall margins."""
_DIRECTION_TRIES = 16
"""Random directions tried to place the source `source_distance` from the microphone."""


class AugmentError(UserError):
    """A noise folder that cannot be used; the message names the folder."""


Range = tuple[float, float]
Talker = Callable[[np.random.Generator], np.ndarray]
"""Draws another recording (float64 samples at 16 kHz) for babble, such as a random training utterance."""


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations a training utterance gets, with what probability, and their ranges.

    Every value in a range is drawn uniformly between its two ends. All probabilities are 0
    by default: the library leaves the audio alone unless a recipe asks.
    """

    reverb_prob: float = 0.0
    rt60: Range = (0.2, 0.8)
    """Reverberation time in seconds (decay by 60 dB)."""
    room_size: Range = (3.0, 10.0)
    """Length and width of the room in metres (each drawn on its own)."""
    room_height: Range = (2.4, 4.0)
    """Height of the room in metres."""
    source_distance: Range = (0.5, 3.0)
    """Metres between talker and microphone (nearer when the room is too small for the drawn distance)."""
    noise_prob: float = 0.0
    snr_db: Range = (5.0, 30.0)
    """Speech-to-noise power ratio in dB, both powers taken over the whole utterance."""
    noise_colors: tuple[NoiseColor, ...] = NOISE_COLORS
    """Generated noise colours, drawn with equal probability."""
    noise_dir: str | None = None
    """A folder of noise recordings (searched recursively; e.g. MUSAN's noise/), or None."""
    recorded_noise_prob: float = 0.5
    """With `noise_dir` set: the share of noisy utterances whose noise is a recording rather than a colour."""
    gain_prob: float = 0.0
    gain_db: Range = (-10.0, 10.0)
    """Level change in dB."""
    babble_prob: float = 0.0
    babble_talkers: tuple[int, int] = (3, 6)
    """How many other talkers make the babble, drawn uniformly between the two (both included)."""
    babble_snr_db: Range = (10.0, 30.0)
    """Speech-to-babble power ratio in dB."""
    pitch_prob: float = 0.0
    pitch_semitones: Range = (-3.0, 3.0)
    """Pitch shift in semitones with the tempo unchanged (librosa's phase vocoder and resampling)."""
    telephone_prob: float = 0.0
    telephone_band: Range = (300.0, 3400.0)
    """The frequencies in Hz a telephone passes; the rest of the spectrum is removed."""
    codec_prob: float = 0.0
    codecs: tuple[Codec, ...] = CODECS
    """Lossy codecs, drawn with equal probability."""
    codec_compression: Range = (0.5, 0.95)
    """libsndfile's compression level, 0 best to 1 smallest: at 16 kHz MP3 gives about 27 to 20
    kbit/s over this range, Opus about 130 to 20 kbit/s."""

    def __post_init__(self) -> None:
        probabilities = ("reverb_prob", "noise_prob", "recorded_noise_prob", "gain_prob", "pitch_prob")
        for name in (*probabilities, "babble_prob", "telephone_prob", "codec_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        _check_range("rt60", self.rt60, 0.05, 5.0, "seconds")
        _check_range("room_size", self.room_size, MIN_ROOM_SIZE, 100.0, "metres")
        _check_range("room_height", self.room_height, MIN_ROOM_SIZE, 100.0, "metres")
        _check_range("source_distance", self.source_distance, 0.1, 100.0, "metres")
        _check_range("snr_db", self.snr_db, -30.0, 100.0, "dB")
        _check_range("gain_db", self.gain_db, -60.0, 60.0, "dB")
        _check_range("babble_snr_db", self.babble_snr_db, -30.0, 100.0, "dB")
        if not 1 <= self.babble_talkers[0] <= self.babble_talkers[1] <= 100:
            raise ValueError(
                f"babble_talkers must be [low, high] with 1 <= low <= high <= 100, got {list(self.babble_talkers)}"
            )
        _check_range("pitch_semitones", self.pitch_semitones, -12.0, 12.0, "semitones")
        _check_range("telephone_band", self.telephone_band, 0.0, SAMPLE_RATE / 2, "Hz")
        _check_range("codec_compression", self.codec_compression, 0.0, 0.99, "")
        unknown_codecs = [codec for codec in self.codecs if codec not in CODECS]
        if unknown_codecs or not self.codecs:
            found = repr(unknown_codecs[0]) if unknown_codecs else "none"
            raise ValueError(f"codecs must name one or more of {', '.join(CODECS)}, got {found}")
        unknown = [color for color in self.noise_colors if color not in NOISE_COLORS]
        if unknown:
            raise ValueError(f"noise_colors must be among {', '.join(NOISE_COLORS)}, got {unknown[0]!r}")
        if self.noise_dir == "":
            raise ValueError("noise_dir must name a folder, or be null for generated noise only")
        if not self.noise_colors and (self.noise_dir is None or self.recorded_noise_prob < 1):
            raise ValueError("noise_colors is empty: set noise_dir and recorded_noise_prob: 1.0, or name a colour")


def _check_range(name: str, value: Range, lowest: float, highest: float, unit: str) -> None:
    """Raise ValueError naming `name` unless lowest <= value[0] <= value[1] <= highest."""
    low, high = value
    if not lowest <= low <= high <= highest:
        raise ValueError(
            f"{name} must be [low, high] {unit} with {lowest:g} <= low <= high <= {highest:g}, got {list(value)}"
        )


def augment(
    waveform: torch.Tensor, config: AugmentConfig, rng: np.random.Generator, talker: Talker | None = None
) -> torch.Tensor:
    """Shift the pitch, reverberate, add noise and babble, change gain, band-limit, pass through a
    codec, each with its probability: (N,) float32 at 16 kHz -> (N,) float32. Babble is made of
    recordings drawn by `talker`, which a config with `babble_prob` needs.

    The same `rng` state gives the same output. Each augmentation draws from its own
    generator (seeded by draws from `rng`), so changing one probability does not change the
    pitches, rooms, noises, babble, gains or codecs of the others. Without any augmentation drawn the
    input itself is returned. Nothing is clipped: gain and noise may take samples beyond
    [-1, 1]. Raises `AugmentError` for an unusable `noise_dir` and `AudioError` for a noise
    recording that cannot be read.

    A data loader seeds `rng` per item, e.g. `np.random.default_rng((seed, epoch, index))`.
    """
    if config.babble_prob > 0 and talker is None:
        raise ValueError("babble_prob needs other recordings to make babble of: pass talker")
    seeds = rng.integers(2**63, size=7)
    reverb_rng, noise_rng, gain_rng, pitch_rng, telephone_rng, codec_rng, babble_rng = map(np.random.default_rng, seeds)
    reverb = reverb_rng.random() < config.reverb_prob
    noise = noise_rng.random() < config.noise_prob
    gain = gain_rng.random() < config.gain_prob
    pitch = pitch_rng.random() < config.pitch_prob
    telephone = telephone_rng.random() < config.telephone_prob
    codec = codec_rng.random() < config.codec_prob
    babble = babble_rng.random() < config.babble_prob
    if not (reverb or noise or gain or pitch or telephone or codec or babble) or waveform.numel() == 0:
        return waveform
    samples = waveform.numpy(force=True).astype(np.float64)
    if pitch:
        samples = shift_pitch(samples, pitch_rng.uniform(*config.pitch_semitones))
    if reverb:
        samples = reverberate(samples, room_impulse_response(sample_room(config, reverb_rng), reverb_rng))
    if noise:
        snr_db = noise_rng.uniform(*config.snr_db)
        if config.noise_dir is not None and noise_rng.random() < config.recorded_noise_prob:
            background = recorded_noise(config.noise_dir, len(samples), noise_rng)
        else:
            color = config.noise_colors[noise_rng.integers(len(config.noise_colors))]
            background = colored_noise(len(samples), color, noise_rng)
        samples = mix_at_snr(samples, background, snr_db)
    if babble and talker is not None:
        count = int(babble_rng.integers(config.babble_talkers[0], config.babble_talkers[1] + 1))
        crowd = babble_of(talker, count, len(samples), babble_rng)
        samples = mix_at_snr(samples, crowd, babble_rng.uniform(*config.babble_snr_db))
    if gain:
        samples = samples * 10 ** (gain_rng.uniform(*config.gain_db) / 20)
    if telephone:
        samples = band_limit(samples, *config.telephone_band)
    if codec:
        name = config.codecs[codec_rng.integers(len(config.codecs))]
        samples = codec_round_trip(samples, name, codec_rng.uniform(*config.codec_compression))
    return torch.from_numpy(samples.astype(np.float32))


def babble_of(talker: Talker, count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """(length,) float64: `count` recordings drawn by `talker`, each started at a random point
    (repeated where shorter than `length`) and brought to the same power, summed."""
    crowd = np.zeros(length)
    for _ in range(count):
        voice = np.asarray(talker(rng), dtype=np.float64)
        power = float(np.mean(voice**2)) if len(voice) else 0.0
        if power > 0:
            crowd += np.resize(np.roll(voice, -int(rng.integers(len(voice)))), length) / math.sqrt(power)
    return crowd


def shift_pitch(samples: np.ndarray, semitones: float) -> np.ndarray:
    """(N,) at 16 kHz with its pitch (and formants) moved by `semitones`, its tempo and length kept."""
    shifted = librosa.effects.pitch_shift(samples, sr=SAMPLE_RATE, n_steps=semitones)
    return np.resize(shifted, len(samples))


def band_limit(samples: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """(N,) at 16 kHz with every frequency outside [low_hz, high_hz] removed (an ideal band-pass)."""
    spectrum = np.fft.rfft(samples)
    frequencies = np.fft.rfftfreq(len(samples), d=1 / SAMPLE_RATE)
    spectrum[(frequencies < low_hz) | (frequencies > high_hz)] = 0
    return np.fft.irfft(spectrum, n=len(samples))


def codec_round_trip(samples: np.ndarray, codec: Codec, compression: float) -> np.ndarray:
    """(N,) at 16 kHz encoded with `codec` at libsndfile's `compression` level (0 best, 1 smallest)
    and decoded again, in memory; louder input is scaled into [-1, 1] for the encoder and back."""
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    scale = peak if peak > 1.0 else 1.0
    encoded = io.BytesIO()
    container, subtype = _SOUNDFILE_FORMATS[codec]
    soundfile.write(
        encoded, samples / scale, SAMPLE_RATE, format=container, subtype=subtype, compression_level=compression
    )
    encoded.seek(0)
    decoded, _ = soundfile.read(encoded, dtype="float64")
    return np.resize(decoded, len(samples)) * scale


def colored_noise(length: int, color: NoiseColor, rng: np.random.Generator) -> np.ndarray:
    """(length,) float64 Gaussian noise: white is flat, pink falls 3 dB and brown 6 dB per octave.

    Shaped in the frequency domain; DC gets the gain of the lowest non-zero frequency.
    """
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = frequencies[1] if length > 1 else 1.0  # no infinite gain at DC
    return np.fft.irfft(spectrum / frequencies ** _COLOR_EXPONENTS[color], n=length)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """(N,) speech + (N,) noise scaled to `snr_db` dB below the speech (mean powers over all N samples).

    Silent speech or silent noise is returned unchanged (no SNR can be set).
    """
    speech_power = float(np.mean(speech**2))
    noise_power = float(np.mean(noise**2))
    if speech_power == 0 or noise_power == 0:
        return speech
    return speech + noise * math.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))


@functools.cache
def noise_files(folder: str) -> tuple[tuple[Path, AudioInfo], ...]:
    """The audio files in `folder` and below, sorted, with their headers (read once per process).

    Raises `AugmentError` for a missing folder or one without audio, `AudioError` for a file
    whose header cannot be read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise AugmentError(f"noise_dir {folder}: {'not a folder' if root.exists() else 'no such folder'}")
    paths = sorted(path for path in root.rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file())
    if not paths:
        extensions = " ".join(sorted(AUDIO_EXTENSIONS))
        raise AugmentError(f"noise_dir {folder}: no audio files ({extensions}) in it or below it")
    return tuple((path, audio_info(path)) for path in paths)


def recorded_noise(folder: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """(length,) float64 samples at 16 kHz from a random file of `folder`, at a random offset.

    A recording shorter than `length` is repeated from a random starting point.
    """
    files = noise_files(folder)
    path, info = files[rng.integers(len(files))]
    seconds = length / SAMPLE_RATE
    if info.duration > seconds:
        noise, _ = load_audio(path, start=rng.uniform(0, info.duration - seconds), duration=seconds)
        samples = noise.numpy().astype(np.float64)
    else:
        noise, _ = load_audio(path)
        samples = np.roll(noise.numpy().astype(np.float64), -int(rng.integers(noise.shape[0])))
    return np.resize(samples, length)  # resampling may leave a sample more or less; a short file repeats


@dataclass(frozen=True)
class Room:
    """A shoebox room with one source and one microphone: positions (x, y, z) in metres from
    one corner, `size` its (length, width, height) in metres, `rt60` its reverberation time
    in seconds."""

    size: tuple[float, float, float]
    source: tuple[float, float, float]
    microphone: tuple[float, float, float]
    rt60: float


def sample_room(config: AugmentConfig, rng: np.random.Generator) -> Room:
    """A random room within `config`'s ranges, source and microphone at least `WALL_MARGIN` from the walls.

    The source is placed `source_distance` from the microphone in a random direction; when no
    direction of `_DIRECTION_TRIES` leaves room for it, the source moves closer.
    """
    size = np.array([rng.uniform(*config.room_size), rng.uniform(*config.room_size), rng.uniform(*config.room_height)])
    low, high = np.full(3, WALL_MARGIN), size - WALL_MARGIN
    rt60 = rng.uniform(*config.rt60)
    microphone = rng.uniform(low, high)
    distance = rng.uniform(*config.source_distance)
    directions = rng.standard_normal((_DIRECTION_TRIES, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    # how far the source can go along each direction before it comes within WALL_MARGIN of a wall
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(directions > 0, (high - microphone) / directions, (low - microphone) / directions)
    reach = np.nan_to_num(reach, nan=np.inf).min(axis=1)  # (tries, 3) -> (tries,)
    fits = np.flatnonzero(reach >= distance)
    choice = int(fits[0]) if fits.size else int(reach.argmax())
    source = microphone + min(distance, reach[choice]) * directions[choice]
    return Room(tuple(size.tolist()), tuple(source.tolist()), tuple(microphone.tolist()), rt60)


def room_impulse_response(room: Room, rng: np.random.Generator) -> np.ndarray:
    """(L,) float64 impulse response at 16 kHz from `room`'s source to its microphone.

    Sample 0 is the direct path, with amplitude 1 (the propagation delay is left out, so
    convolved speech stays aligned with its transcript). Reflections arriving within
    `EARLY_REFLECTIONS` seconds of it come from the image method, rounded to whole samples;
    later ones are Gaussian noise whose energy decays by 60 dB per `rt60` seconds. L covers
    the decay to -60 dB.
    """
    size, source, microphone = np.array(room.size), np.array(room.source), np.array(room.microphone)
    volume = float(np.prod(size))
    surface = 2 * float(size[0] * size[1] + size[0] * size[2] + size[1] * size[2])
    # Eyring: rt60 = 24 ln(10) V / (-c S ln(1 - alpha)); a wall reflects beta = sqrt(1 - alpha) of the pressure
    log_beta = -12 * math.log(10) * volume / (SPEED_OF_SOUND * surface * room.rt60)
    direct = float(np.linalg.norm(source - microphone))
    horizon = direct + SPEED_OF_SOUND * EARLY_REFLECTIONS  # longest path of an early reflection, metres
    # Per axis, image sources lie at (1 - 2p) s + 2 r L after |r - p| + |r| reflections (Allen & Berkley).
    offsets, bounces = [], []
    for axis in range(3):
        r = np.arange(-math.ceil(horizon / (2 * size[axis])) - 1, math.ceil(horizon / (2 * size[axis])) + 2)
        p = np.array([0, 1])
        images = (1 - 2 * p[:, None]) * source[axis] + 2 * r[None, :] * size[axis]  # (2, R)
        offsets.append((images - microphone[axis]).ravel())
        bounces.append((np.abs(r[None, :] - p[:, None]) + np.abs(r[None, :])).ravel())
    distances = np.sqrt(
        offsets[0][:, None, None] ** 2 + offsets[1][None, :, None] ** 2 + offsets[2][None, None, :] ** 2
    ).ravel()  # (I_x, I_y, I_z) -> (I,)
    reflections = (bounces[0][:, None, None] + bounces[1][None, :, None] + bounces[2][None, None, :]).ravel()
    early = distances <= horizon
    delays = np.rint((distances[early] - direct) / SPEED_OF_SOUND * SAMPLE_RATE).astype(np.int64)
    amplitudes = direct / distances[early] * np.exp(log_beta * reflections[early])  # direct path: 1

    length = max(math.ceil(room.rt60 * SAMPLE_RATE), round(EARLY_REFLECTIONS * SAMPLE_RATE) + 1)
    response = np.bincount(delays, weights=amplitudes, minlength=length)[:length]
    # Diffuse tail: at time t after emission the response carries c / (4 pi V) exp(-6 ln(10) t / rt60)
    # energy per second (relative to a direct path of 1 / (4 pi r) at distance r); scaled by 4 pi r here.
    tail_start = round(EARLY_REFLECTIONS * SAMPLE_RATE) + 1
    emitted = direct / SPEED_OF_SOUND + np.arange(tail_start, length) / SAMPLE_RATE  # seconds since emission
    energy = SPEED_OF_SOUND / (4 * math.pi * volume * SAMPLE_RATE) * np.exp(-6 * math.log(10) * emitted / room.rt60)
    response[tail_start:] = 4 * math.pi * direct * np.sqrt(energy) * rng.standard_normal(length - tail_start)
    return response


def reverberate(waveform: np.ndarray, response: np.ndarray) -> np.ndarray:
    """(N,) convolved with the impulse response (L,) by FFT -> (N,) with the input's mean power.

    The reverberation past the input's end is cut off, so the length stays N.
    """
    size = 1 << (len(waveform) + len(response) - 2).bit_length()  # a power of two >= N + L - 1
    wet = np.fft.irfft(np.fft.rfft(waveform, size) * np.fft.rfft(response, size), size)[: len(waveform)]
    wet_power = float(np.mean(wet**2))
    return wet * math.sqrt(float(np.mean(waveform**2)) / wet_power) if wet_power > 0 else wet


SPEED_FACTORS: tuple[float, ...] = (0.9, 1.0, 1.1)
"""The speed perturbation factors of Ko et al. (2015)."""


def speed_perturb(waveform: torch.Tensor, factor: float) -> torch.Tensor:
    """Play (N,) at `factor` times the speed (tempo and pitch), as Kaldi's recipes do.

    Returns about N / factor samples at 16 kHz.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    return resample(waveform, round(SAMPLE_RATE * factor), SAMPLE_RATE)
