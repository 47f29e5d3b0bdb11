"""What every trainer of this toolkit does around its optimizer steps, written once.

`Progress` is where a run stands (saved in each checkpoint); `seed_step` makes a step's
randomness a function of (seed, step); `StepBookkeeping` counts a step, logs its figures
every `log_every` steps, validates or checkpoints when due, and says when `epochs` or
`max_steps` is reached; `Budget` says whether another epoch fits in a wall-clock budget.
The acoustic trainer (`asr.training.loop`) and the LM trainer (`asr.lm.training`) share it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from asr.training.schedule import LRSchedule


@dataclass
class Progress:
    """Where training stands: saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    skipped_steps: int = 0
    validations: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    """Wall-clock seconds of training up to this checkpoint, over every process that resumed it."""


RANK_STRIDE = 2**32 + 15
"""Apart between the seeds of two ranks at one step: more steps than any run takes."""


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """Make this step's randomness (dropout, SpecAugment, VTLP) a function of (seed, step, rank)
    alone: each rank of a distributed run draws its own, a resumed run the same as before."""
    value = (seed * 1_000_003 + step + rank * RANK_STRIDE) % (2**63)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % (2**32))


@dataclass
class Throughput:
    """Items (utterances, tokens) done since `started` (time.monotonic), for the logged rate."""

    unit: str
    """"utterances" or "tokens": the TensorBoard scalar is train/{unit}_per_second."""
    started: float = field(default_factory=time.monotonic)
    items: int = 0

    def rate(self) -> float:
        return self.items / max(time.monotonic() - self.started, 1e-9)


@dataclass
class Budget:
    """A wall-clock budget of `minutes` (None: no budget) for a run that has already spent
    `spent` seconds (a resumed run's `Progress.seconds`); `clock` is in seconds."""

    minutes: float | None
    spent: float = 0.0
    clock: Callable[[], float] = time.monotonic
    longest_epoch: float = 0.0
    """Seconds of the longest whole epoch of this process so far, its validation included."""

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        """Seconds spent, this process's and those before it."""
        return self.spent + self.clock() - self.started

    def left(self) -> float:
        """Seconds left (inf without a budget)."""
        return math.inf if self.minutes is None else self.minutes * 60 - self.elapsed()

    def epoch_fits(self) -> bool:
        """Whether an epoch as long as the longest so far ends within the budget (and time is left)."""
        return self.left() > 0 and self.left() >= self.longest_epoch

    def time_up(self) -> bool:
        return self.left() <= 0

    def epoch_took(self, seconds: float) -> None:
        self.longest_epoch = max(self.longest_epoch, seconds)


class StepBookkeeping:
    """Mixin for a trainer with `config` (log_every, validate_every, checkpoint_every, epochs,
    max_steps), `progress`, `schedule`, `writer`, `_validate_and_save()` and `_save()`."""

    config: Any
    progress: Progress
    schedule: LRSchedule
    writer: SummaryWriter | None

    def _validate_and_save(self) -> None:
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError

    def _done(self) -> bool:
        config = self.config
        return self.progress.epoch >= config.epochs or (
            config.max_steps is not None and self.progress.step >= config.max_steps
        )

    def _after_step(self, figures: dict[str, float] | None, throughput: Throughput, bar: object) -> bool:
        """Count the step just taken (`figures` None: skipped), log every `log_every` steps (TensorBoard
        and the progress bar `bar` when it has `set_postfix`), validate or checkpoint when due; True
        when `max_steps` is reached."""
        progress, config = self.progress, self.config
        progress.step += 1
        if figures is None:
            progress.skipped_steps += 1
        elif self.writer is not None and progress.step % config.log_every == 0:
            rate = throughput.rate()
            scalars = figures | {"lr": self.schedule.lr(progress.step - 1), f"{throughput.unit}_per_second": rate}
            for key, value in scalars.items():
                self.writer.add_scalar(f"train/{key}", value, progress.step)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{figures['loss']:.3f}", **{f"{throughput.unit[:3]}_s": f"{rate:.1f}"})
        if config.validate_every and progress.step % config.validate_every == 0:
            self._validate_and_save()
        elif progress.step % config.checkpoint_every == 0:
            self._save()
        return config.max_steps is not None and progress.step >= config.max_steps
