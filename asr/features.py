"""Log-mel features, global mean/variance normalisation, SpecAugment, vocal-tract-length
perturbation, speed perturbation.

Features are computed in batches on whatever device the module lives on, always in
float32 (also under autocast). Frames are cut without centring ("snip edges"), so a
frame never sees samples beyond an utterance's end and padding cannot change the
features of the real frames.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
import torchaudio
from torch import nn

from asr.atomic import atomic_write_text
from asr.audio import SAMPLE_RATE, resample
from asr.errors import UserError

UtteranceNorm = Literal["off", "mean", "mean_and_variance"]
UTTERANCE_NORMS: tuple[UtteranceNorm, ...] = get_args(UtteranceNorm)
UTTERANCE_MIN_STD = 0.1
"""The smallest per-utterance standard deviation divided by, in units of the global one: a band
that holds no signal in an utterance (above a telephone's 3.4 kHz, say) is not blown up."""


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel filterbank settings (HTK mel scale, Hann window, power spectrum) and normalisation."""

    n_mels: int = 80
    window_ms: float = 25.0
    hop_ms: float = 10.0
    f_min: float = 20.0
    f_max: float = SAMPLE_RATE / 2
    log_floor: float = 1e-10
    """Power below this is clamped before the log, so silence gives log(1e-10), not -inf."""
    utterance_norm: UtteranceNorm = "off"
    """After the global statistics, each utterance's own mean is subtracted ("mean": cepstral mean
    normalisation) and its own standard deviation divided by too ("mean_and_variance"), over its
    real frames: a fixed channel colouring or level of the whole utterance is taken out."""

    def __post_init__(self) -> None:
        if self.utterance_norm not in UTTERANCE_NORMS:
            raise ValueError(f"utterance_norm must be one of {', '.join(UTTERANCE_NORMS)}, got {self.utterance_norm!r}")
        if self.n_mels < 1:
            raise ValueError(f"n_mels must be positive, got {self.n_mels}")
        if not 0 < self.hop_ms <= self.window_ms:
            raise ValueError(f"need 0 < hop_ms <= window_ms, got hop_ms={self.hop_ms}, window_ms={self.window_ms}")
        if not 0 <= self.f_min < self.f_max <= SAMPLE_RATE / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= {SAMPLE_RATE / 2}, got {self.f_min}, {self.f_max}")

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return round(SAMPLE_RATE * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        """Hop length in samples."""
        return round(SAMPLE_RATE * self.hop_ms / 1000)

    def num_frames(self, num_samples: int) -> int:
        """Frames of an utterance of `num_samples` samples (0 if shorter than one window)."""
        if num_samples < self.win_length:
            return 0
        return 1 + (num_samples - self.win_length) // self.hop_length

    def frames_for_duration(self, seconds: float) -> int:
        """Frames of an utterance lasting `seconds`."""
        return self.num_frames(round(seconds * SAMPLE_RATE))


def real_frames(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) padded features, (B,) frame counts -> (B, T) bool: True on each utterance's real frames."""
    frames = torch.arange(features.shape[1], device=features.device)
    return frames[None, :] < lengths.to(features.device)[:, None]


VTLP_BOUNDARY_HZ = 4800.0
"""Jaitly & Hinton's F_hi: the vocal-tract-length warp scales frequencies up to about this."""


class LogMel(nn.Module):
    """(B, N) waveforms at 16 kHz, (B,) sample counts -> (B, T, n_mels) log-mel, (B,) frame counts.

    Frames past an utterance's length are set to zero.
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=config.win_length,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            window_fn=torch.hann_window,
            power=2.0,
            center=False,
            norm=None,
            mel_scale="htk",
        )

    def forward(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor,
        vtlp_factors: torch.Tensor | None = None,
        boundary_hz: float = VTLP_BOUNDARY_HZ,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`vtlp_factors` (B,), if given: each utterance's vocal-tract-length warp (`vtlp_warp`)."""
        config = self.config
        lengths = lengths.to(waveforms.device)
        frame_lengths = torch.where(
            lengths >= config.win_length,
            1 + torch.div(lengths - config.win_length, config.hop_length, rounding_mode="floor"),
            torch.zeros_like(lengths),
        )
        if waveforms.shape[1] < config.win_length:  # STFT needs at least one window
            waveforms = nn.functional.pad(waveforms, (0, config.win_length - waveforms.shape[1]))
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            if vtlp_factors is None:
                power = self.mel(waveforms.float())  # (B, n_mels, T)
            else:
                spectrum = self.mel.spectrogram(waveforms.float())  # (B, F, T), F = n_fft // 2 + 1
                banks = vtlp_filterbanks(config, vtlp_factors.to(spectrum.device), spectrum.shape[1], boundary_hz)
                power = torch.bmm(banks.transpose(1, 2), spectrum)  # (B, n_mels, T)
            features = power.clamp(min=config.log_floor).log().transpose(1, 2)  # -> (B, T, n_mels)
        valid = real_frames(features, frame_lengths)
        return features * valid[..., None], frame_lengths


@dataclass(frozen=True)
class VtlpConfig:
    """Vocal-tract-length perturbation (Jaitly & Hinton 2013): in training, each utterance's
    frequency axis is scaled by a factor drawn uniformly in [1 - max_warp, 1 + max_warp] before
    the mel filterbank, as if a talker with a shorter or longer vocal tract had said it."""

    max_warp: float = 0.1
    boundary_hz: float = VTLP_BOUNDARY_HZ
    """Frequencies up to about this are scaled; above it the warp bends to keep the Nyquist
    frequency in place (the paper's F_hi)."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_warp < 0.5:
            raise ValueError(f"max_warp must lie in [0, 0.5), got {self.max_warp}")
        if not 0 < self.boundary_hz < SAMPLE_RATE / 2:
            raise ValueError(f"boundary_hz must lie in (0, {SAMPLE_RATE / 2}), got {self.boundary_hz}")


def vtlp_warp(frequencies: torch.Tensor, factors: torch.Tensor, boundary_hz: float) -> torch.Tensor:
    """(F,) frequencies in Hz, (B,) warp factors -> (B, F) warped frequencies: f * factor up to
    boundary * min(factor, 1) / factor, then a straight line to the Nyquist frequency, which stays
    put (Jaitly & Hinton 2013, eq. 1), so that the warp is continuous and maps [0, Nyquist] onto
    itself."""
    nyquist = SAMPLE_RATE / 2
    factors = factors[:, None]  # (B, 1)
    knee = boundary_hz * factors.clamp(max=1.0) / factors  # (B, 1): where the linear part ends
    upper = nyquist - (nyquist - boundary_hz * factors.clamp(max=1.0)) / (nyquist - knee) * (nyquist - frequencies)
    return torch.where(frequencies <= knee, frequencies * factors, upper)


def vtlp_filterbanks(config: FeatureConfig, factors: torch.Tensor, n_freqs: int, boundary_hz: float) -> torch.Tensor:
    """(B,) warp factors -> (B, n_freqs, n_mels) triangular HTK-mel filterbanks evaluated at the
    warped frequencies of the spectrum's bins (`vtlp_warp`): the power at f counts as power at
    warp(f). A factor of 1 gives torchaudio's `melscale_fbanks` (no norm, HTK scale)."""
    bins = torch.linspace(0, SAMPLE_RATE / 2, n_freqs, device=factors.device)  # (F,)
    warped = vtlp_warp(bins, factors.float(), boundary_hz)[..., None]  # (B, F, 1)
    mels = torch.linspace(_hz_to_mel(config.f_min), _hz_to_mel(config.f_max), config.n_mels + 2, device=factors.device)
    edges = 700.0 * (10 ** (mels / 2595.0) - 1.0)  # (n_mels + 2,) Hz: each filter's lower edge, peak, upper edge
    rising = (warped - edges[:-2]) / (edges[1:-1] - edges[:-2])  # (B, F, n_mels)
    falling = (edges[2:] - warped) / (edges[2:] - edges[1:-1])
    return torch.minimum(rising, falling).clamp(min=0.0)


def _hz_to_mel(hz: float) -> float:
    """The HTK mel scale."""
    return 2595.0 * math.log10(1.0 + hz / 700.0)


class NormStatsError(UserError):
    """A normalisation statistics file that cannot be read."""


@dataclass(frozen=True)
class NormStats:
    """Per-dimension mean and standard deviation of training features, over `frames` frames,
    and the feature settings they were computed with (None in files that predate them)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    frames: int
    features: FeatureConfig | None = None

    def to_dict(self) -> dict:
        """Plain values, as `save` writes them and `from_dict` reads them."""
        record: dict = {"mean": list(self.mean), "std": list(self.std), "frames": self.frames}
        if self.features is not None:
            record["features"] = dataclasses.asdict(self.features)
        return record

    def save(self, path: str | Path) -> None:
        """Write the statistics as a small JSON file (atomically)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        """Read a file written by `save`; errors name the file and the problem."""
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise NormStatsError(f"{path}: cannot read normalisation statistics ({error.strerror})") from None
        except json.JSONDecodeError as error:
            raise NormStatsError(f"{path}: not a statistics file (invalid JSON: {error.msg})") from None
        except UnicodeDecodeError:
            raise NormStatsError(f"{path}: not a statistics file (not UTF-8 text)") from None
        try:
            return cls.from_dict(record)
        except NormStatsError as error:
            raise NormStatsError(f"{path}: {error}") from None

    @classmethod
    def from_dict(cls, record: object) -> NormStats:
        """Statistics from plain values; refuses anything that is not finite numbers of one length."""
        if not isinstance(record, dict) or not {"mean", "std", "frames"} <= record.keys():
            raise NormStatsError("not a statistics file (needs keys mean, std, frames)")
        mean, std = record["mean"], record["std"]
        if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) > 0):
            raise NormStatsError("mean and std must be lists of the same non-zero length")
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in mean + std):
            raise NormStatsError("mean and std must hold numbers")
        if not all(math.isfinite(x) for x in mean + std) or min(std) <= 0:
            raise NormStatsError(
                "mean and std must be finite and std positive; was the audio out of range when they were computed?"
            )
        if not isinstance(record["frames"], int) or isinstance(record["frames"], bool) or record["frames"] < 1:
            raise NormStatsError(f"frames must be a positive whole number, found {record['frames']!r}")
        features = record.get("features")
        if features is not None:
            try:
                features = FeatureConfig(**features)
            except (TypeError, ValueError) as error:
                raise NormStatsError(f"'features' is not a feature config ({error})") from None
        if len(mean) != (features.n_mels if features is not None else len(mean)):
            raise NormStatsError(f"{len(mean)} dimensions, but the features have {features.n_mels}")
        return cls(tuple(map(float, mean)), tuple(map(float, std)), int(record["frames"]), features)


class StatsAccumulator:
    """Streaming mean/variance over feature frames, accumulated in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.total: torch.Tensor | None = None
        self.total_sq: torch.Tensor | None = None

    def update(self, features: torch.Tensor) -> None:
        """Add the frames of `features` (T, D)."""
        frames = features.detach().to(torch.float64)
        if self.total is None or self.total_sq is None:
            self.total = frames.sum(dim=0)
            self.total_sq = frames.square().sum(dim=0)
        else:
            self.total += frames.sum(dim=0)
            self.total_sq += frames.square().sum(dim=0)
        self.count += frames.shape[0]

    def result(self, min_std: float = 1e-5) -> NormStats:
        """The statistics so far; `std` is floored at `min_std` so no dimension divides by zero."""
        if self.total is None or self.total_sq is None or self.count == 0:
            raise ValueError("no frames were accumulated")
        mean = self.total / self.count
        variance = (self.total_sq / self.count - mean.square()).clamp(min=0)
        std = variance.sqrt().clamp(min=min_std)
        if not (mean.isfinite().all() and std.isfinite().all()):
            raise NormStatsError(
                "the features' mean or variance is not finite; is some audio far outside [-1, 1] "
                "(integer samples stored as float)?"
            )
        return NormStats(mean=tuple(mean.tolist()), std=tuple(std.tolist()), frames=self.count)


def compute_stats(waveforms: Iterable[torch.Tensor], config: FeatureConfig) -> NormStats:
    """Mean and std of the log-mel features of `waveforms` (each (N,) at 16 kHz), in one pass."""
    logmel = LogMel(config)
    accumulator = StatsAccumulator()
    for waveform in waveforms:
        features, lengths = logmel(waveform[None], torch.tensor([waveform.shape[0]]))
        accumulator.update(features[0, : int(lengths[0])])
    return dataclasses.replace(accumulator.result(), features=config)


def utterance_normalize(features: torch.Tensor, lengths: torch.Tensor, variance: bool) -> torch.Tensor:
    """(B, T, D), (B,) -> (B, T, D): each utterance's real frames less their own mean and, with
    `variance`, over their own standard deviation (at least `UTTERANCE_MIN_STD`); padding stays 0."""
    valid = real_frames(features, lengths)[..., None]  # (B, T, 1)
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1, 1)
    mean = (features * valid).sum(dim=1, keepdim=True) / count  # (B, 1, D)
    centred = (features - mean) * valid
    if not variance:
        return centred
    std = (centred.square().sum(dim=1, keepdim=True) / count).sqrt().clamp(min=UTTERANCE_MIN_STD)  # (B, 1, D)
    return centred / std


class GlobalNorm(nn.Module):
    """(B, T, D), (B,) -> (features - mean) / std with padded frames kept at zero."""

    def __init__(self, stats: NormStats) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(stats.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(stats.std, dtype=torch.float32))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = real_frames(features, lengths)
        return (features - self.mean) / self.std * valid[..., None]


@dataclass(frozen=True)
class SpecAugmentConfig:
    """SpecAugment (Park et al. 2019); the defaults are close to its LibriSpeech "LD" policy."""

    freq_masks: int = 2
    freq_mask_width: int = 27
    """Largest frequency mask, in mel bins."""
    time_masks: int = 2
    time_mask_width: int = 40
    """Largest time mask, in frames."""
    time_mask_max_ratio: float = 0.2
    """A time mask covers at most this fraction of its utterance."""
    time_warp: int = 0
    """Largest time-warp shift, in frames; 0 turns warping off."""

    def __post_init__(self) -> None:
        for name in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width", "time_warp"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.time_mask_max_ratio <= 1:
            raise ValueError(f"time_mask_max_ratio must lie in [0, 1], got {self.time_mask_max_ratio}")


def time_warp(features: torch.Tensor, lengths: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Warp each utterance of (B, T, D) in time within its length (B,): a random frame (the centre,
    at least `max_shift` frames from either end) moves by up to `max_shift` frames (`warp`).

    Utterances of at most 2 x `max_shift` + 1 frames stay as they are. Every utterance draws its
    own centre and shift, all at once.
    """
    b = features.shape[0]
    if max_shift < 1 or features.shape[1] == 0:
        return features
    lengths = lengths.to(features.device)
    # integers as randint would draw them: centre in [W, L - W), shift in [-W + 1, W)
    centre = max_shift + (torch.rand(b, device=features.device) * (lengths - 2 * max_shift).clamp(min=1)).long()
    shift = (torch.rand(b, device=features.device) * (2 * max_shift - 1)).long() - max_shift + 1
    return warp(features, lengths, centre, shift.masked_fill(lengths <= 2 * max_shift + 1, 0))


def warp(features: torch.Tensor, lengths: torch.Tensor, centre: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(B, T, D) with frame `centre` (B,) of each utterance moved to `centre + shift` (B,), the frames
    before and after it stretched linearly to meet it (each side interpolated with aligned corners,
    so both ends of the utterance stay put); a shift of 0 and the padding past `lengths` (B,) leave
    the features as they are."""
    t = features.shape[1]
    c, length = centre[:, None].float(), lengths[:, None].float()  # (B, 1)
    moved = c + shift[:, None]  # (B, 1): where the centre lands, the first frame of the right side
    j = torch.arange(t, device=features.device, dtype=torch.float32)[None, :]  # (1, T) output frames
    left = j * (c - 1) / (moved - 1).clamp(min=1)  # [0, moved) <- [0, c)
    right = c + (j - moved) * (length - c - 1) / (length - moved - 1).clamp(min=1)  # [moved, L) <- [c, L)
    source = torch.where(j < moved, left, right)  # (B, T): the fractional input frame of each output frame
    source = torch.where((shift[:, None] != 0) & (j < length), source, j)
    low = source.floor().long().clamp(0, t - 1)
    high = (low + 1).clamp(max=t - 1)
    fraction = (source - low).unsqueeze(-1).to(features.dtype)  # (B, T, 1)
    below, above = (features.gather(1, index[..., None].expand_as(features)) for index in (low, high))
    return torch.lerp(below, above, fraction)


def mask_spans(size: int, limits: torch.Tensor, widths: torch.Tensor, count: int) -> torch.Tensor:
    """(B, size) bool: `count` spans per row, each of a width drawn uniformly in [0, widths) (B,) (and
    at most the row's limit) at a start drawn uniformly so that it ends within the row's first
    `limits` (B,) positions, as torchaudio's `mask_along_axis` draws one."""
    b, device = limits.shape[0], limits.device
    positions = torch.arange(size, device=device)[None, :]  # (1, size)
    masked = torch.zeros(b, size, dtype=torch.bool, device=device)
    widths = torch.minimum(widths, limits)
    for _ in range(count):
        width = torch.rand(b, device=device) * widths
        start = torch.rand(b, device=device) * (limits - width)
        masked |= (positions >= start.long()[:, None]) & (positions < (start + width).long()[:, None])
    return masked


class SpecAugment(nn.Module):
    """Random frequency masks, time masks and time warping of (B, T, D) features.

    Active only in training mode; masks are drawn per utterance and stay inside its
    real frames. Masked values are 0, the mean of normalised features. The whole batch
    is augmented at once (no loop over utterances), on the features' device.
    """

    def __init__(self, config: SpecAugmentConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        config = self.config
        if not self.training:
            return features
        _, t, d = features.shape
        lengths = lengths.to(features.device)
        features = time_warp(features, lengths, config.time_warp)
        # a time mask is at most time_mask_width frames and time_mask_max_ratio of its utterance
        widths = torch.minimum(
            torch.full_like(lengths, config.time_mask_width), (config.time_mask_max_ratio * lengths).floor().long()
        )
        frames = mask_spans(t, lengths, widths, config.time_masks)  # (B, T)
        every_bin, width = torch.full_like(lengths, d), torch.full_like(lengths, config.freq_mask_width)
        bins = mask_spans(d, every_bin, width, config.freq_masks)  # (B, D)
        return features.masked_fill(frames[:, :, None] | bins[:, None, :], 0.0)


SPEED_FACTORS: tuple[float, ...] = (0.9, 1.0, 1.1)
"""The speed perturbation factors of Ko et al. (2015)."""


def speed_perturb(waveform: torch.Tensor, factor: float) -> torch.Tensor:
    """Play (N,) at `factor` times the speed (tempo and pitch), as Kaldi's recipes do.

    Returns about N / factor samples at 16 kHz.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    return resample(waveform, round(SAMPLE_RATE * factor), SAMPLE_RATE)


class Frontend(nn.Module):
    """Waveforms to model input: log-mel, global (and per-utterance) normalisation, and in
    training mode vocal-tract-length perturbation (`vtlp`) and SpecAugment.

    (B, N) waveforms at 16 kHz, (B,) sample counts -> (B, T, n_mels), (B,) frame counts.
    """

    def __init__(
        self,
        config: FeatureConfig,
        stats: NormStats,
        augment: SpecAugmentConfig | None = None,
        vtlp: VtlpConfig | None = None,
    ) -> None:
        super().__init__()
        if len(stats.mean) != config.n_mels:
            raise ValueError(f"statistics have {len(stats.mean)} dimensions, the features {config.n_mels}")
        self.logmel = LogMel(config)
        self.norm = GlobalNorm(stats)
        self.augment = SpecAugment(augment) if augment is not None else None
        self.vtlp = vtlp

    @property
    def hop_seconds(self) -> float:
        """Seconds between feature frames."""
        return self.logmel.config.hop_ms / 1000

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        factors = None
        if self.training and self.vtlp is not None and self.vtlp.max_warp > 0:
            uniform = torch.rand(waveforms.shape[0], device=waveforms.device)  # (B,) in [0, 1)
            factors = 1.0 + (2.0 * uniform - 1.0) * self.vtlp.max_warp
        boundary_hz = self.vtlp.boundary_hz if self.vtlp is not None else VTLP_BOUNDARY_HZ
        features, frame_lengths = self.logmel(waveforms, lengths, factors, boundary_hz)
        features = self.norm(features, frame_lengths)
        if self.logmel.config.utterance_norm != "off":
            variance = self.logmel.config.utterance_norm == "mean_and_variance"
            features = utterance_normalize(features, frame_lengths, variance)
        if self.augment is not None:
            features = self.augment(features, frame_lengths)
        return features, frame_lengths
