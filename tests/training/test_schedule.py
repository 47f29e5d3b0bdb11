import math

import pytest

from asr.training.schedule import LRSchedule, ScheduleConfig


def test_warmup_rises_linearly_to_the_peak() -> None:
    schedule = LRSchedule(ScheduleConfig(lr=1.0, warmup_steps=10, decay="constant"), 100)
    assert [schedule.lr(s) for s in (0, 4, 9, 50)] == pytest.approx([0.1, 0.5, 1.0, 1.0])


def test_inverse_sqrt_halves_the_rate_at_four_times_the_warmup() -> None:
    schedule = LRSchedule(ScheduleConfig(lr=1.0, warmup_steps=10, decay="inverse_sqrt"), 100)
    assert schedule.lr(39) == pytest.approx(0.5)


def test_cosine_ends_at_the_floor() -> None:
    schedule = LRSchedule(ScheduleConfig(lr=1.0, warmup_steps=10, decay="cosine", min_lr_ratio=0.1), 110)
    assert schedule.lr(9) == pytest.approx(1.0)
    assert schedule.lr(59) == pytest.approx(0.55)
    assert schedule.lr(200) == pytest.approx(0.1)


def test_plateau_lowers_the_rate_after_patience_runs_out_and_resumes_from_state() -> None:
    config = ScheduleConfig(lr=1.0, warmup_steps=0, decay="plateau", plateau_factor=0.5, plateau_patience=2)
    schedule = LRSchedule(config, 100)
    for metric in (10.0, 9.0, 9.5, 9.2):  # two validations without improvement
        schedule.observe(metric)
    assert schedule.lr(5) == pytest.approx(0.5)
    resumed = LRSchedule(config, 100)
    resumed.load_state_dict(schedule.state_dict())
    for s in (schedule, resumed):
        s.observe(9.9)
        s.observe(9.9)
    assert resumed.lr(5) == schedule.lr(5) == pytest.approx(0.25)
    assert math.isfinite(resumed.best)


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="need an lr above 0 and at most 1"):
        ScheduleConfig(lr=0)
