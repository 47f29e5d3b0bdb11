"""The length-bucketing sampler (`asr.data.sampler`): every utterance once within the budget,
seeded order, resume mid-epoch, ranks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.data.sampler import BucketBatchSampler

lengths_strategy = st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(
    lengths=lengths_strategy,
    max_frames=st.integers(min_value=400, max_value=3000),
    seed=st.integers(0, 5),
    epoch=st.integers(0, 5),
)
def test_sampler_yields_every_utterance_once_within_the_budget(lengths, max_frames, seed, epoch) -> None:
    sampler = BucketBatchSampler(lengths, max_frames, seed=seed)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(batch) * max(lengths[i] for i in batch) <= max_frames for batch in batches)
    assert len(sampler) == len(batches)


@settings(max_examples=30, deadline=None)
@given(lengths=lengths_strategy, seed=st.integers(0, 5))
def test_sampler_order_depends_only_on_seed_and_epoch(lengths, seed) -> None:
    first, second = BucketBatchSampler(lengths, 1000, seed=seed), BucketBatchSampler(lengths, 1000, seed=seed)
    for epoch in (0, 3):
        first.set_epoch(epoch)
        second.set_epoch(epoch)
        assert list(first) == list(second)


def test_sampler_shuffles_between_epochs_and_keeps_padding_low() -> None:
    lengths = [100 + (i * 37) % 900 for i in range(500)]
    sampler = BucketBatchSampler(lengths, 8000, seed=1)
    epochs = [sampler.batches(epoch) for epoch in range(2)]
    assert epochs[0] != epochs[1]
    padded = sum(len(b) * max(lengths[i] for i in b) for b in epochs[0])
    assert sum(lengths) / padded > 0.9


def test_sorted_epochs_go_shortest_first_then_shuffle() -> None:
    lengths = [100 + (i * 37) % 900 for i in range(500)]
    sampler = BucketBatchSampler(lengths, 8000, seed=1, sorted_epochs=2, num_replicas=2, rank=1)
    for epoch in (0, 1):  # ascending up to the 5% length jitter
        longest = [max(lengths[i] for i in batch) for batch in sampler.batches(epoch)]
        assert all(a <= b * 1.1 for a, b in zip(longest, longest[1:], strict=False))
    longest = [max(lengths[i] for i in batch) for batch in sampler.batches(2)]
    assert not all(a <= b * 1.1 for a, b in zip(longest, longest[1:], strict=False))
    assert sorted(map(sorted, sampler.batches(0))) != sorted(map(sorted, sampler.batches(1)))  # still jittered


def test_sampler_resumes_mid_epoch() -> None:
    lengths = [(i * 7919) % 300 + 10 for i in range(200)]
    sampler = BucketBatchSampler(lengths, 1200, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=5)
    assert list(sampler) == full[5:] and len(sampler) == len(full) - 5


def test_sampler_splits_batches_evenly_across_ranks() -> None:
    lengths = [(i * 31) % 200 + 5 for i in range(301)]
    ranks = [BucketBatchSampler(lengths, 900, seed=0, num_replicas=3, rank=r).batches(4) for r in range(3)]
    assert len({len(batches) for batches in ranks}) == 1
    seen = [i for batches in ranks for batch in batches for i in batch]
    assert len(seen) == len(set(seen))


def test_sampler_caps_the_batch_size_when_asked() -> None:
    batches = BucketBatchSampler([10] * 50, 10_000, max_batch_size=8).batches(0)
    assert max(len(b) for b in batches) == 8


def test_sampler_rejects_an_utterance_longer_than_the_budget() -> None:
    with pytest.raises(ValueError, match="longer than max_frames=100"):
        BucketBatchSampler([50, 150], 100)
