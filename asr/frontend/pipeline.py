"""The front end a model is trained and used with: waveforms to normalised (and, in training,
augmented) log-mel features."""

from __future__ import annotations

import torch
from torch import nn

from asr.frontend.features import VTLP_BOUNDARY_HZ, FeatureConfig, LogMel, VtlpConfig
from asr.frontend.normalization import GlobalNorm, NormStats, utterance_normalize
from asr.frontend.specaugment import SpecAugment, SpecAugmentConfig


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
