"""What every trainer shares (`asr.training.steps`): the wall-clock budget, the step seeds."""

import pytest
import torch

from asr.training.steps import Budget, seed_step


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_epoch_starts_only_while_the_longest_so_far_still_fits() -> None:
    clock = Clock()
    budget = Budget(minutes=10, clock=clock)
    assert budget.epoch_fits()  # nothing measured yet: the first epoch always starts
    clock.now += 240
    budget.epoch_took(240)
    assert budget.left() == pytest.approx(360) and budget.epoch_fits()
    clock.now += 200
    budget.epoch_took(200)  # shorter: the longest stays the estimate
    assert budget.longest_epoch == 240 and not budget.epoch_fits() and not budget.time_up()
    clock.now += 161
    assert budget.time_up()


def test_a_resumed_run_counts_the_time_its_checkpoint_had_spent() -> None:
    clock = Clock()
    budget = Budget(minutes=1, spent=50.0, clock=clock)
    clock.now += 9
    assert budget.elapsed() == pytest.approx(59) and not budget.time_up()
    clock.now += 1
    assert budget.time_up()


def test_without_a_budget_every_epoch_fits_and_time_is_never_up() -> None:
    clock = Clock()
    budget = Budget(minutes=None, clock=clock)
    budget.epoch_took(1e9)
    clock.now += 1e12
    assert budget.epoch_fits() and not budget.time_up()


def draws(seed: int, step: int, rank: int) -> torch.Tensor:
    seed_step(seed, step, rank)
    return torch.rand(4)


def test_each_rank_draws_its_own_numbers_at_a_step_and_again_the_same_when_resumed() -> None:
    ranks = [draws(0, 7, rank) for rank in range(8)]
    assert all(not torch.equal(ranks[a], ranks[b]) for a in range(8) for b in range(a))
    assert torch.equal(draws(0, 7, 3), ranks[3])  # a resumed rank 3 at step 7
    assert not torch.equal(draws(0, 8, 0), ranks[0])


def test_rank_0_draws_what_a_single_process_drew_before_ranks_had_seeds() -> None:
    value = (5 * 1_000_003 + 11) % (2**63)  # seed_step(5, 11) before the rank term
    torch.manual_seed(value)
    before = torch.rand(4)
    assert torch.equal(draws(5, 11, 0), before)
