"""The length-bucketing batch sampler: batches of similar length within a padded-frame budget,
shuffled per epoch from a seed, sharded across ranks and resumable mid-epoch."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length whose padded size stays within a frame budget.

    Each batch satisfies `len(batch) * max(lengths in batch) <= max_frames` (the padded
    frames it costs). Every epoch, lengths get a little seeded random jitter before
    sorting (so batches differ between epochs while padding stays low) and the batch
    order is shuffled; the same seed and epoch give the same batches. With
    `num_replicas` > 1 each rank takes every `num_replicas`-th batch and all ranks get
    the same number. `set_epoch(epoch, start_batch)` resumes mid-epoch.

    The first `sorted_epochs` epochs keep the batches shortest first instead of
    shuffling them (SortaGrad, Amodei et al. 2016): an attention model learns to
    align on short utterances before it meets long ones.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        jitter: float = 0.05,
        max_batch_size: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        sorted_epochs: int = 0,
    ) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        too_long = [i for i, n in enumerate(lengths) if n > max_frames]
        if too_long:
            raise ValueError(
                f"{len(too_long)} utterances are longer than max_frames={max_frames} "
                f"(the longest has {max(lengths)} frames); raise max_frames or lower max_duration"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must lie in [0, 1), got {jitter}")
        self.lengths = list(lengths)
        self.max_frames = max_frames
        self.seed = seed
        self.shuffle = shuffle
        self.jitter = jitter
        self.max_batch_size = max_batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.sorted_epochs = sorted_epochs
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate epoch `epoch` next, skipping its first `start_batch` batches of this rank."""
        self.epoch = epoch
        self.start_batch = start_batch

    def batches(self, epoch: int) -> list[list[int]]:
        """All of this rank's batches of `epoch`, in order."""
        rng = random.Random(self.seed * 1_000_003 + epoch)
        if self.shuffle:
            keys = [n * (1 + self.jitter * rng.uniform(-1, 1)) for n in self.lengths]
            order = sorted(range(len(keys)), key=lambda i: (keys[i], rng.random()))
        else:
            order = sorted(range(len(self.lengths)), key=self.lengths.__getitem__)
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        for index in order:
            longest_with = max(longest, self.lengths[index])
            full = self.max_batch_size is not None and len(batch) >= self.max_batch_size
            if batch and (full or (len(batch) + 1) * longest_with > self.max_frames):
                batches.append(batch)
                batch, longest_with = [], self.lengths[index]
            batch.append(index)
            longest = longest_with
        if batch:
            batches.append(batch)
        if self.shuffle and epoch >= self.sorted_epochs:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[self.rank : usable : self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start_batch :]

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.start_batch)
