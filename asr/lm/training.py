"""Training the character LM: the config, the loop, validation, checkpoints and the LM directory.

The same guarantees as `asr.training`: every step's randomness (dropout) is seeded from
(seed, step) and the data order from (seed, epoch), checkpoints are written atomically
and hold the optimizer, schedule and position, so a run resumed after a kill reaches
the same weights as one that never stopped. One process, on a CPU or one GPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from asr.atomic import atomic_write_text, exclusive_folder
from asr.checkpoint import list_checkpoints, load_training_state, save_training_state
from asr.config import dump_config
from asr.data.sampler import BucketBatchSampler
from asr.errors import TrainingError
from asr.lm import CharLM, LMConfig, export_lm_dir
from asr.lm.corpus import TextBatch, read_text
from asr.lm.evaluation import evaluate_lm
from asr.progress import Track, no_progress
from asr.text import Vocabulary
from asr.training.config import OptimConfig, check_counts, check_seed
from asr.training.schedule import LRSchedule
from asr.training.steps import Progress, StepBookkeeping, Throughput, seed_step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LMDataConfig:
    """Text files (one sentence a line) and batching. `asr lm train --text/--dev-text` set the files."""

    train: tuple[str, ...] = ()
    dev: str = ""
    max_tokens: int = 20000
    """Padded tokens (characters + 1 per sentence) per batch."""
    max_chars: int = 400
    """Training sentences longer than this (after normalisation) are skipped and counted."""

    def __post_init__(self) -> None:
        if self.max_tokens <= self.max_chars:
            raise ValueError(f"max_tokens ({self.max_tokens}) must exceed max_chars ({self.max_chars})")


@dataclass(frozen=True)
class LMTrainConfig:
    """Everything `asr lm train` needs; written resolved to EXP_DIR/config.yaml."""

    data: LMDataConfig = field(default_factory=LMDataConfig)
    model: LMConfig = field(default_factory=LMConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10
    max_steps: int | None = None
    """Stop after this many optimizer steps, whatever the epoch."""
    seed: int = 0
    log_every: int = 50
    validate_every: int | None = None
    """Also validate every N steps (validation always runs at each epoch's end)."""
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        counts = ("epochs", "log_every", "checkpoint_every", "keep_checkpoints")
        check_counts(self, counts, optional=("max_steps", "validate_every"))
        check_seed(self.seed)


class LMTrainer(StepBookkeeping):
    """One LM training run in EXP_DIR; `run()` trains (or resumes) and exports EXP_DIR/model."""

    def __init__(self, config: LMTrainConfig, exp_dir: Path, device: torch.device, track: Track = no_progress) -> None:
        if not config.data.train:
            raise TrainingError("no training text: give text files with --text (data.train)")
        self.config = config
        self.exp_dir = Path(exp_dir)
        self.device = device
        self.track = track
        self.vocab = Vocabulary.default()
        self.corpus, self.text_report = read_text(config.data.train, config.data.max_chars, cache=self.exp_dir / "text")
        self.dev = read_text([config.data.dev])[0] if config.data.dev else None
        self.sampler = BucketBatchSampler(self.corpus.lengths, config.data.max_tokens, seed=config.seed)
        model_config = dataclasses.replace(config.model, vocab_size=len(self.vocab))
        torch.manual_seed(config.seed)
        self.model = CharLM(model_config).to(device)
        self.optimizer = _optimizer(self.model, config.optim)
        self.schedule = LRSchedule(config.optim.schedule, config.max_steps or config.epochs * len(self.sampler))
        self.progress = Progress()
        self.writer: SummaryWriter | None = None

    # --------------------------------------------------------------- resuming
    @property
    def checkpoints(self) -> Path:
        return self.exp_dir / "checkpoints"

    def _resume(self) -> None:
        found = list_checkpoints(self.checkpoints)
        if not found:
            return
        state = load_training_state(found[-1])
        if state["config"] != dump_config(self.config):
            raise TrainingError(
                f"{self.exp_dir}: holds a run with a different config; use a new EXP_DIR or the same config"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.progress = Progress(**state["progress"])
        log.info("resumed from %s (step %d, epoch %d)", found[-1], self.progress.step, self.progress.epoch)

    def _save(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "config": dump_config(self.config),
        }
        save_training_state(state, self.checkpoints, self.progress.step, self.config.keep_checkpoints)

    # ------------------------------------------------------------------ steps
    def _train_step(self, batch: TextBatch) -> dict[str, float] | None:
        """One optimizer step; returns its figures, or None if a non-finite loss or gradient skipped it."""
        seed_step(self.config.seed, self.progress.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr(self.progress.step)
        batch = batch.to(self.device)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        log_probs = self.model(batch.inputs, batch.targets, batch.lengths)  # (B, L), 0 at padding
        loss = -log_probs.sum() / batch.lengths.sum()  # nats per token
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        if not (torch.isfinite(loss) and torch.isfinite(norm)):
            log.warning("step %d: non-finite loss or gradient; skipped", self.progress.step)
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        return {"loss": loss.item(), "grad_norm": norm.item()}

    def validate(self) -> dict[str, float]:
        """Dev loss (nats per token), bits per character and perplexity, corpus-level."""
        assert self.dev is not None
        score = evaluate_lm(self.model, self.dev, self.config.data.max_tokens)
        return {"loss": score.loss, "bits_per_character": score.bits_per_character, "perplexity": score.perplexity}

    def _validate_and_save(self) -> None:
        if self.dev is not None:
            metrics = self.validate()
            self.schedule.observe(metrics["loss"])
            best = min((v["loss"] for v in self.progress.validations), default=float("inf"))
            self.progress.validations.append({"step": self.progress.step, **metrics})
            log.info(
                "step %d: dev %.4f bits per character, perplexity %.4f",
                self.progress.step,
                metrics["bits_per_character"],
                metrics["perplexity"],
            )
            if self.writer is not None:
                for key, value in metrics.items():
                    self.writer.add_scalar(f"dev/{key}", value, self.progress.step)
            if metrics["loss"] < best:
                kept = {"model": self.model.state_dict(), **metrics}
                save_training_state(kept, self.exp_dir / "best", self.progress.step, keep=1)
            atomic_write_text(self.exp_dir / "validations.json", json.dumps(self.progress.validations, indent=1) + "\n")
        self._save()

    # ------------------------------------------------------------------- run
    def run(self) -> Path:
        """Train until `epochs` or `max_steps`, then export EXP_DIR/model; returns its path."""
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        self._resume()
        atomic_write_text(self.exp_dir / "config.yaml", dump_config(self.config))
        self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
        try:
            self._loop()
        finally:
            self.writer.close()
        return self.export(self.exp_dir / "model")

    def _loop(self) -> None:
        while not self._done():
            self.sampler.set_epoch(self.progress.epoch, self.progress.batch_in_epoch)
            throughput = Throughput("tokens")
            description = f"epoch {self.progress.epoch + 1}"
            batches: Iterable[list[int]] = self.track(self.sampler, len(self.sampler), description)
            for indices in batches:
                batch = self.corpus.batch(indices)
                figures = self._train_step(batch)
                self.progress.batch_in_epoch += 1
                throughput.items += int(batch.lengths.sum())
                if self._after_step(figures, throughput, batches):
                    break
            else:
                self.progress.epoch += 1
                self.progress.batch_in_epoch = 0
            self._validate_and_save()

    def export(self, model_dir: Path) -> Path:
        """Export the weights with the best dev loss (the last ones when there is no dev text)."""
        best = list_checkpoints(self.exp_dir / "best")
        if best:
            state = load_training_state(best[-1])
            weights, dev = state.pop("model"), state
        else:
            weights, dev = self.model.state_dict(), None
        export_lm_dir(model_dir, self.model.config, weights, self.vocab, dev)
        log.info("exported %s", model_dir)
        return model_dir


def _optimizer(model: CharLM, optim: OptimConfig) -> torch.optim.Optimizer:
    optimizer_class = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(model.parameters(), lr=optim.schedule.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def train_lm(config: LMTrainConfig, exp_dir: str | Path, device: torch.device, track: Track = no_progress) -> Path:
    """Train (or resume) an LM in `exp_dir`, which it holds exclusively; returns the exported LM directory."""
    with exclusive_folder(exp_dir, "asr lm train"):
        return LMTrainer(config, Path(exp_dir), device, track).run()
