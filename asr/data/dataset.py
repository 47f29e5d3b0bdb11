"""The training and evaluation dataset (audio decoded, transcripts encoded), collation into
padded batches, and the streaming normalisation statistics of a manifest."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from asr.data.manifest import Utterance
from asr.frontend.audio import AudioError
from asr.frontend.augment import AugmentConfig, augment, speed_perturb
from asr.frontend.features import FeatureConfig
from asr.frontend.normalization import NormStats, compute_stats
from asr.progress import Track, no_progress
from asr.text import Vocabulary


@dataclass(frozen=True)
class Example:
    """One utterance ready for collation: waveform (N,) at 16 kHz, target ids (L,); or, when its
    audio could not be read, the one-line `error` that names the file (and empty tensors)."""

    id: str
    waveform: torch.Tensor
    targets: torch.Tensor
    error: str | None = None


class SpeechDataset(Dataset[Example]):
    """Loads audio and encodes transcripts.

    With several `speed_factors`, each item is played at one of them, and with an `augment`
    config it is augmented (`asr.augment`; babble is made of other utterances of the set); both
    are drawn from (seed, epoch, index) alone: the same epoch gives the same choices in any
    worker, so a resumed run sees the same data as an uninterrupted one.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        vocab: Vocabulary,
        speed_factors: Sequence[float] = (1.0,),
        seed: int = 0,
        augment: AugmentConfig | None = None,
    ) -> None:
        if not speed_factors or min(speed_factors) <= 0:
            raise ValueError(f"speed_factors must be positive numbers, got {speed_factors}")
        self.utterances = list(utterances)
        self.vocab = vocab
        self.speed_factors = tuple(speed_factors)
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch `epoch`'s speed factors (call before creating the DataLoader iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Example:
        """The utterance, or an `Example` carrying the error of audio that cannot be read (returned, not
        raised: a DataLoader worker would wrap it in a traceback and stop the whole run)."""
        utterance = self.utterances[index]
        try:
            waveform = utterance.load()
        except AudioError as error:
            return Example(
                utterance.id, torch.zeros(0), torch.zeros(0, dtype=torch.long), f"utterance {utterance.id}: {error}"
            )
        if len(self.speed_factors) > 1:
            rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
            waveform = speed_perturb(waveform, rng.choice(self.speed_factors))
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            waveform = augment(waveform, self.augment, rng, self._talker)
        targets = torch.tensor(self.vocab.encode(utterance.text), dtype=torch.long)
        return Example(utterance.id, waveform, targets)

    def _talker(self, rng: np.random.Generator) -> np.ndarray:
        """A random training utterance for babble; one that cannot be read is silence here (its own
        turn reports it)."""
        try:
            return self.utterances[int(rng.integers(len(self.utterances)))].load().numpy()
        except AudioError:
            return np.zeros(0)


@dataclass(frozen=True)
class Batch:
    """Padded waveforms (B, N) with sample counts (B,), padded targets (B, L) with lengths (B,).

    Features are computed from the waveforms by `asr.frontend.features.LogMel` on the device that
    trains or decodes.
    """

    ids: tuple[str, ...]
    waveforms: torch.Tensor
    waveform_lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    failed: tuple[str, ...] = ()
    """One line per utterance of the batch whose audio could not be read (left out of the tensors)."""

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with its tensors on `device`."""
        return Batch(
            self.ids,
            self.waveforms.to(device, non_blocking=True),
            self.waveform_lengths.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            self.target_lengths.to(device, non_blocking=True),
            self.failed,
        )


def collate(examples: Sequence[Example], pad_id: int) -> Batch:
    """Pad waveforms with zeros and targets with `pad_id`; examples whose audio failed are left out
    and listed in `failed` (a batch may end up with no utterance at all)."""
    failed = tuple(e.error for e in examples if e.error is not None)
    examples = [e for e in examples if e.error is None]
    if not examples:
        empty = torch.zeros(0, dtype=torch.long)
        return Batch((), torch.zeros(0, 0), empty, torch.zeros(0, 0, dtype=torch.long), empty, failed)
    waveforms = torch.nn.utils.rnn.pad_sequence([e.waveform for e in examples], batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence([e.targets for e in examples], batch_first=True, padding_value=pad_id)
    return Batch(
        ids=tuple(e.id for e in examples),
        waveforms=waveforms,
        waveform_lengths=torch.tensor([e.waveform.shape[0] for e in examples]),
        targets=targets,
        target_lengths=torch.tensor([e.targets.shape[0] for e in examples]),
        failed=failed,
    )


class _Waveforms(Dataset["torch.Tensor | AudioError"]):
    """Decoded waveforms (N,), or the `AudioError` of a file that failed.

    Returning the error (rather than raising it in a DataLoader worker, which wraps it
    in a traceback) lets the caller raise it with its one-line message intact.
    """

    def __init__(self, utterances: Sequence[Utterance]) -> None:
        self.utterances = utterances

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> torch.Tensor | AudioError:
        try:
            return self.utterances[index].load()
        except AudioError as error:
            return error


def manifest_stats(
    utterances: Sequence[Utterance], config: FeatureConfig, jobs: int = 2, track: Track = no_progress
) -> NormStats:
    """Normalisation statistics of the log-mel features of `utterances`, in one streaming pass.

    Audio is decoded by `jobs` DataLoader workers. Raises the `AudioError` of the first
    unreadable file.
    """
    loader = DataLoader(_Waveforms(utterances), batch_size=None, num_workers=min(jobs, len(utterances)))

    def waveforms() -> Iterator[torch.Tensor]:
        for item in track(loader, len(utterances), "statistics"):
            if isinstance(item, AudioError):
                raise item
            yield item

    return compute_stats(waveforms(), config)
