"""Log-mel features and vocal-tract-length perturbation (VTLP).

Features are computed in batches on whatever device the module lives on, always in
float32 (also under autocast). Frames are cut without centring ("snip edges"), so a
frame never sees samples beyond an utterance's end and padding cannot change the
features of the real frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torchaudio
from torch import nn

from asr.frontend.audio import SAMPLE_RATE

UtteranceNorm = Literal["off", "mean", "mean_and_variance"]
UTTERANCE_NORMS: tuple[UtteranceNorm, ...] = get_args(UtteranceNorm)


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
