"""Normalisation of log-mel features: global mean and variance statistics of a training set
(computed in one streaming pass, saved with the model), and each utterance's own mean (and
variance) over its real frames."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from asr.atomic import atomic_write_text
from asr.errors import UserError
from asr.frontend.features import FeatureConfig, LogMel, real_frames
from asr.reading import read_small_text

UTTERANCE_MIN_STD = 0.1
"""The smallest per-utterance standard deviation divided by, in units of the global one: a band
that holds no signal in an utterance (above a telephone's 3.4 kHz, say) is not blown up."""


SILENT_VARIANCE = 1e-6
"""Below this variance in every log-mel band, the frames are silence (digital zeros or a constant)."""


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
            record = json.loads(read_small_text(path, "statistics file"))
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
        if float(variance.max()) < SILENT_VARIANCE:  # a band may be constant (8 kHz audio's upper half), not all
            raise NormStatsError(
                f"every feature is the same in all {self.count} frames: is the audio silent? Statistics of "
                "silence would scale real speech by thousands"
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
