"""Learning-rate schedules: linear warm-up, then a decay or a reduce-on-plateau rule.

`lr(step) = peak * warmup(step) * decay(step) * plateau_factor`, written plainly so
a reader can see what rate any step gets; the state needed to resume is tiny.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

MAX_LR = 1.0
"""The largest peak learning rate a config may ask for (Adam's steps are about lr in size: past 1,
every step is noise, and 1e300 overflows)."""


@dataclass(frozen=True)
class ScheduleConfig:
    """Peak learning rate, warm-up steps, and what happens after warm-up.

    `decay`: "constant"; "inverse_sqrt" (lr ~ 1/sqrt(step) after warm-up); "cosine" (to
    `min_lr_ratio * lr` at `total_steps`); "plateau" (multiply by `plateau_factor` when
    the validation metric has not improved for `plateau_patience` validations).
    """

    lr: float = 1e-3
    warmup_steps: int = 1000
    decay: Literal["constant", "inverse_sqrt", "cosine", "plateau"] = "plateau"
    min_lr_ratio: float = 0.01
    plateau_factor: float = 0.5
    plateau_patience: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.lr <= MAX_LR or self.warmup_steps < 0:
            raise ValueError(
                f"need an lr above 0 and at most {MAX_LR:g} and warmup_steps >= 0, got {self.lr}, {self.warmup_steps}"
            )
        if not 0 <= self.min_lr_ratio <= 1 or not 0 < self.plateau_factor <= 1:
            raise ValueError("min_lr_ratio must lie in [0, 1] and plateau_factor in (0, 1]")
        if self.plateau_patience < 1:
            raise ValueError(f"plateau_patience must be at least 1, got {self.plateau_patience}")


class LRSchedule:
    """The learning rate for each optimizer step; `observe()` feeds it validation results."""

    def __init__(self, config: ScheduleConfig, total_steps: int) -> None:
        self.config = config
        self.total_steps = max(1, total_steps)
        self.plateau_scale = 1.0
        self.best: float = math.inf
        self.bad_validations = 0

    def lr(self, step: int) -> float:
        """Learning rate for optimizer step `step` (0-based)."""
        c = self.config
        rate = c.lr * min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else c.lr
        after = max(0, step + 1 - c.warmup_steps)
        if c.decay == "inverse_sqrt" and c.warmup_steps:
            rate *= math.sqrt(c.warmup_steps / max(c.warmup_steps, step + 1))
        elif c.decay == "cosine":
            span = max(1, self.total_steps - c.warmup_steps)
            progress = min(1.0, after / span)
            rate *= c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return rate * self.plateau_scale

    def observe(self, metric: float) -> None:
        """Record a validation metric (lower is better); in "plateau" mode, maybe lower the rate."""
        if metric < self.best:
            self.best, self.bad_validations = metric, 0
            return
        self.bad_validations += 1
        if self.config.decay == "plateau" and self.bad_validations >= self.config.plateau_patience:
            self.plateau_scale *= self.config.plateau_factor
            self.bad_validations = 0

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best = float(state["best"])
        self.bad_validations = int(state["bad_validations"])
