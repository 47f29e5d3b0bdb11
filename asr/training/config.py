"""What `asr train` is told: the data, features, model, optimiser, decoding defaults and loop settings.

One frozen dataclass per stage, loaded from YAML of plain values by `asr.config`; each
checks its own ranges, so a wrong value is a one-line error naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from asr.data.manifest import FilterConfig
from asr.decoding.config import SearchConfig
from asr.frontend.augment import AugmentConfig
from asr.frontend.features import FeatureConfig, VtlpConfig
from asr.frontend.specaugment import SpecAugmentConfig
from asr.model import LASConfig
from asr.text import TextConfig
from asr.training.schedule import ScheduleConfig

MAX_REPEAT = 1000
"""The most times an epoch may go through one training manifest."""


def check_counts(config: Any, counts: Sequence[str], optional: Sequence[str] = ()) -> None:
    """Raise `ValueError` naming the first field of `config` among `counts` below 1, or among
    `optional` neither null nor at least 1."""
    for name in (*counts, *optional):
        value = getattr(config, name)
        if (value is not None or name in counts) and value < 1:
            allowed = "at least 1 or null" if name in optional else "at least 1"
            raise ValueError(f"{name} must be {allowed}, got {value}")


@dataclass(frozen=True)
class TrainSource:
    """A training manifest and how many times every epoch goes through it (`repeat`, 1 to
    `MAX_REPEAT`), so that a small corpus can weigh as much as a larger one beside it."""

    manifest: str
    repeat: int = 1

    def __post_init__(self) -> None:
        if not self.manifest:
            raise ValueError("a training source needs its manifest")
        if not 1 <= self.repeat <= MAX_REPEAT:
            raise ValueError(f"repeat must be a whole number from 1 to {MAX_REPEAT}, got {self.repeat}")


@dataclass(frozen=True)
class DataConfig:
    """Manifests, statistics and batching. Paths are relative to the working directory.

    `train` is one manifest, or a list of sources (`[{manifest: real.jsonl, repeat: 3},
    {manifest: synthetic.jsonl}]`) whose utterances are batched together by length.
    """

    train: str | tuple[TrainSource, ...] = ""
    dev: str | tuple[str, ...] = ""
    """One dev manifest, or several (one per corpus or engine) that `dev_utterances` draws from
    in equal parts."""
    stats: str = ""
    """Normalisation statistics from `asr stats` over the training manifest."""
    max_frames: int = 20000
    """Padded feature frames per batch (per GPU)."""
    max_batch_size: int | None = None
    num_workers: int = 2
    speed_perturb: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Reverberation, noise and gain applied to training audio on the fly (all off by default)."""
    filters: FilterConfig = field(default_factory=FilterConfig)
    dev_utterances: int | None = None
    """Validate on N dev utterances only (None: all): equal parts of each dev manifest, each part
    drawn across its speakers (`asr.data.manifest.draw_across_speakers`, seeded by `seed`)."""
    sorted_epochs: int = 0
    """The first N epochs take their batches shortest first (SortaGrad), then shuffled."""
    max_unlearnable_fraction: float = 0.05
    """Training refuses to start when more than this share of the training (or dev) utterances
    has too few listener frames for its transcript (see `asr.training.learnable`); fewer are dropped."""
    max_bad_audio_fraction: float = 0.01
    """Audio that fails to decode during training is skipped with a warning; training stops when more
    than this share of an epoch's utterances has failed."""

    @property
    def dev_manifests(self) -> tuple[str, ...]:
        """The dev manifests (none when `dev` is not set)."""
        if isinstance(self.dev, str):
            return (self.dev,) if self.dev else ()
        return self.dev

    @property
    def sources(self) -> tuple[TrainSource, ...]:
        """The training manifests with their repeats (none when `train` is not set)."""
        if isinstance(self.train, str):
            return (TrainSource(self.train),) if self.train else ()
        return self.train

    def __post_init__(self) -> None:
        for name in ("max_unlearnable_fraction", "max_bad_audio_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.max_frames < 1 or (self.max_batch_size is not None and self.max_batch_size < 1):
            raise ValueError("max_frames and max_batch_size must be at least 1 (max_batch_size may be null)")
        if self.num_workers < 0 or self.sorted_epochs < 0:
            raise ValueError("num_workers and sorted_epochs must not be negative")
        if self.dev_utterances is not None and self.dev_utterances < 1:
            raise ValueError(f"dev_utterances must be at least 1 or null, got {self.dev_utterances}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (or Adam) with gradient clipping; the learning rate follows `schedule`."""

    optimizer: Literal["adamw", "adam"] = "adamw"
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        if not all(0 <= beta < 1 for beta in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if not 0 < self.grad_clip < math.inf:
            raise ValueError(f"grad_clip must be a finite number > 0 (the largest gradient norm), got {self.grad_clip}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `asr train` needs; written resolved to EXP_DIR/config.yaml."""

    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    spec_augment: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)
    vtlp: VtlpConfig | None = None
    """Vocal-tract-length perturbation of the features in training (off unless a recipe asks)."""
    text: TextConfig = field(default_factory=TextConfig)
    """The normaliser of transcripts and how the vocabulary is drawn from them (saved with the
    model); its `metric` (WER or CER) ranks validations and chooses the best checkpoints."""
    model: LASConfig = field(default_factory=LASConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    decoding: SearchConfig = field(default_factory=SearchConfig)
    """Decoding defaults exported with the model."""
    init_from: str | None = None
    """An exported model directory whose weights start the run (fine-tuning): same vocabulary,
    features and model shapes; optimizer, schedule and statistics (data.stats) start afresh."""
    epochs: int = 20
    max_steps: int | None = None
    """Stop after this many optimizer steps, whatever the epoch."""
    max_minutes: float | None = None
    """A wall-clock budget: an epoch starts only while the longest epoch so far (its validation
    included) still fits in what is left, and a run whose time runs out mid-epoch stops after the
    step in hand, validates and exports what it has (a run always takes its first step). Counted
    from the start of this process plus the training time of the checkpoint it resumes; the
    learning-rate schedule still spans `epochs` (or `max_steps`), so size those to what fits."""
    accumulate_grad: int = 1
    """Batches per optimizer step: the effective batch is processes x accumulate_grad x data.max_frames."""
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """"auto": bf16 autocast on a GPU that has bf16 (compute capability 8.0+), fp16 with a gradient
    scaler on an older GPU, fp32 on a CPU; the choice is logged."""
    compile: bool = False
    """torch.compile the attention (the first steps then take a minute to compile)."""
    log_every: int = 50
    validate_every: int | None = None
    """Also validate every N steps (validation always runs at each epoch's end)."""
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    average_best: int = 5
    """The exported model averages the weights of the best N validations by dev WER."""
    plot_utterances: int = 3
    sampling_prob: float = 0.0
    """Scheduled sampling: the largest probability of feeding the speller its own prediction."""
    sampling_start: int = 0
    sampling_ramp: int = 1
    """The probability rises linearly from 0 at step `sampling_start` over `sampling_ramp` steps."""

    def __post_init__(self) -> None:
        counts = ("epochs", "log_every", "checkpoint_every", "keep_checkpoints", "average_best", "accumulate_grad")
        check_counts(self, (*counts, "sampling_ramp"), optional=("max_steps", "validate_every"))
        for name in ("plot_utterances", "sampling_start"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.sampling_prob <= 1:
            raise ValueError(f"sampling_prob must lie in [0, 1] (a probability), got {self.sampling_prob}")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise ValueError(f"max_minutes must be a finite number of minutes above 0, got {self.max_minutes}")
        check_seed(self.seed)


def check_seed(seed: int) -> None:
    """A run's seed: 0 to 2**31 - 1 (the data order and each step's seed derive from it; numpy and the
    samplers take no negative seed)."""
    if not 0 <= seed < 2**31:
        raise ValueError(f"seed must be a whole number from 0 to {2**31 - 1}, got {seed}")


RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "max_steps",
        "max_minutes",
        "data.num_workers",
        "validate_every",
        "checkpoint_every",
        "log_every",
        "plot_utterances",
    }
)
"""Config keys a resumed run may change: none of them changes a step already taken."""
