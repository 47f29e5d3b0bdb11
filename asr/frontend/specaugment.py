"""SpecAugment (Park et al. 2019): frequency masks, time masks and time warping of a batch of
features, drawn per utterance inside its real frames, all on the features' device at once."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


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
