"""Training: the loop and its optimizer step.

The loop is a plain `for batch in loader` that you can read top to bottom; the data it reads
(`asr.training.data`), the checkpoints it keeps and the model it exports
(`asr.training.checkpoints`) and its validation (`asr.training.validation`) each have their own module.
Every step's randomness (dropout, SpecAugment, scheduled sampling) is seeded from (seed, step,
rank), data order from (seed, epoch), so a run resumed from a checkpoint reaches the same weights
as one that never stopped. The losses are normalised by the characters and tokens of every
rank's batches (`loss_weights`); `max_minutes` stops the run at a wall-clock budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import json
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from asr.atomic import atomic_write_text, exclusive_folder
from asr.checkpoint import save_training_state
from asr.config import dump_config
from asr.data.dataset import Batch, collate
from asr.decoding.config import DecodingError
from asr.errors import TrainingError
from asr.frontend.pipeline import Frontend
from asr.model import LAS
from asr.progress import Track, no_progress
from asr.recognize import search_settings
from asr.training.checkpoints import (
    check_resumed_vocabulary,
    clear_run,
    export_average,
    initial_stats,
    initialise_from,
    keep_if_best,
    latest_state,
)
from asr.training.config import TrainConfig
from asr.training.data import load_training_data, most_dev_utterances
from asr.training.distributed import (
    World,
    all_agree,
    all_sum,
    barrier,
    broadcast,
    collective_timeout,
    init_world,
    launched_as_main,
    leave,
)
from asr.training.schedule import LRSchedule
from asr.training.steps import Budget, Progress, StepBookkeeping, Throughput, seed_step
from asr.training.validation import ValidationError, autocast, dev_metrics, resolve_precision, write_plots

log = logging.getLogger(__name__)

T = TypeVar("T")


def compile_model(model: LAS) -> None:
    """torch.compile, in place (parameter names unchanged), the attention with dynamic shapes; the
    speller's step loop stays in Python and calls the compiled attention. The listener stays eager:
    its time is in the LSTM kernels (cuDNN, oneDNN), and inductor fails on its LSTMs under CUDA
    bf16 autocast in torch 2.11 ("Unexpected floating ScalarType in at::autocast::prioritize",
    benchmarks/README.md)."""
    model.speller.attention.compile(dynamic=True)


class Trainer(StepBookkeeping):
    """One training run in EXP_DIR; `run()` trains (or resumes) and exports the model."""

    def __init__(self, config: TrainConfig, exp_dir: Path, device: str = "auto", track: Track = no_progress) -> None:
        self.config = config
        self.exp_dir = Path(exp_dir)
        self.world = init_world(device, collective_timeout(most_dev_utterances(config.data)))
        self.device = self.world.device
        self.precision = resolve_precision(config.precision, self.device)  # refused here, before any work
        # fp16 needs its gradients scaled (and unscaled before clipping); disabled, the scaler passes them through
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.track = track
        self.progress = Progress()
        self.budget = Budget(config.max_minutes)
        self.bad_audio = 0  # utterances of this epoch whose audio failed to decode
        resumed = latest_state(self.exp_dir, config)
        self.stats = initial_stats(config, resumed)
        self.data = load_training_data(config, self.world)
        self.vocab = self.data.vocab
        check_resumed_vocabulary(self.exp_dir, resumed, self.vocab)
        self.dataset, self.sampler = self.data.dataset, self.data.sampler
        model_config = dataclasses.replace(config.model, vocab_size=len(self.vocab))
        torch.manual_seed(config.seed)
        self.model = LAS(model_config).to(self.device)
        try:  # validation searches with these settings
            search_settings(config.decoding, self.model)
        except DecodingError as error:
            raise TrainingError(str(error)) from None
        if config.init_from is not None and resumed is None:
            initialise_from(self.model, config.init_from, self.vocab, config.features)
            if self.world.is_main:
                log.info("starting from the weights of %s", config.init_from)
        try:
            self.frontend = Frontend(config.features, self.stats, config.spec_augment, config.vtlp).to(self.device)
        except ValueError as error:
            raise TrainingError(f"data.stats: {error}; run asr stats --config CONFIG again") from None
        self.step_model = self._wrap(self.model)
        optimizer_class = torch.optim.AdamW if config.optim.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_class(
            self.model.parameters(),
            lr=config.optim.schedule.lr,
            betas=config.optim.betas,
            weight_decay=config.optim.weight_decay,
        )
        total = config.max_steps or config.epochs * math.ceil(len(self.sampler) / config.accumulate_grad)
        self.schedule = LRSchedule(config.optim.schedule, total)
        self.writer: SummaryWriter | None = None
        if resumed is not None:
            self._restore(resumed)

    # ----------------------------------------------------------------- set-up
    def _wrap(self, model: LAS) -> torch.nn.Module:
        if self.config.compile:
            compile_model(model)
        if not self.world.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    # ------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "config": dump_config(self.config),
            "stats": self.stats.to_dict(),
            "longest_utterance_seconds": self.data.longest_seconds,
            "tokens": list(self.vocab.tokens),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if state.get("scaler"):  # fp16 runs; checkpoints before the scaler have none
            self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"])
        self.budget = Budget(self.config.max_minutes, spent=self.progress.seconds)
        log.info("resumed at step %d, epoch %d", self.progress.step, self.progress.epoch)

    def _save(self) -> None:
        self.progress.seconds = self.budget.elapsed()
        if self.world.is_main:
            folder, keep = self.exp_dir / "checkpoints", self.config.keep_checkpoints
            save_training_state(self._state(), folder, self.progress.step, keep)
        barrier(self.world)

    # ------------------------------------------------------------------ steps
    def _loader(self) -> DataLoader:
        """The rest of the current epoch's batches (the sampler is set to it before its length is read)."""
        self.sampler.set_epoch(self.progress.epoch, self.progress.batch_in_epoch)
        self.dataset.set_epoch(self.progress.epoch)
        return DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=self.config.data.num_workers,
            collate_fn=functools.partial(collate, pad_id=self.vocab.pad_id),
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.config.seed + self.progress.epoch),
        )

    def _sampling_prob(self) -> float:
        c = self.config
        ramp = min(1.0, max(0, self.progress.step - c.sampling_start) / max(1, c.sampling_ramp))
        return c.sampling_prob * ramp

    def _train_step(self, batches: list[Any]) -> dict[str, float] | None:
        """One optimizer step over `batches` (gradients accumulated, each batch's loss weighted
        1 / len(batches)); returns the mean losses, or None if the step was skipped."""
        config = self.config
        seed_step(config.seed, self.progress.step, self.world.rank)
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr(self.progress.step)
        self.model.train()
        self.frontend.train()
        self.optimizer.zero_grad(set_to_none=True)
        weights, empty = loss_weights(batches, self.world)  # each batch's CTC and attention loss weights
        if empty:  # on any rank: all skip
            log.warning("step %d: a batch lost all its utterances to unreadable audio; skipped", self.progress.step)
            return None
        sums = torch.zeros(3, device=self.device)  # loss, attention loss, CTC loss: read once, after the step
        w = config.model.ctc_weight
        num_frames = self.frontend.logmel.config.num_frames
        try:
            for i, batch in enumerate(batches):
                # lengths on the host, counted from the batch's: the listener and CTC need not wait for the device's
                host_lengths = torch.tensor([num_frames(n) for n in batch.waveform_lengths.tolist()])
                host_target_lengths = batch.target_lengths
                batch = batch.to(self.device)
                last = i == len(batches) - 1
                # DDP averages gradients across processes on the last batch only
                sync = contextlib.nullcontext() if last or not self.world.distributed else self.step_model.no_sync()
                with sync:
                    with autocast(self.precision, self.device):
                        features, lengths = self.frontend(batch.waveforms, batch.waveform_lengths)
                        losses = self.step_model(
                            features,
                            lengths,
                            batch.targets,
                            batch.target_lengths,
                            self._sampling_prob(),
                            host_lengths,
                            host_target_lengths,
                        )
                    ctc, attention = losses.ctc * weights[i][0], losses.attention * weights[i][1]
                    loss = w * ctc + (1 - w) * attention
                    self.scaler.scale(loss).backward()
                sums += torch.stack([loss, attention, ctc]).detach().float()
        except torch.OutOfMemoryError:
            if self.world.distributed:  # the others wait in DDP's all-reduce: the launcher stops them all
                raise TrainingError(
                    f"rank {self.world.rank}: out of GPU memory at step {self.progress.step} on a batch of "
                    f"{len(batch.ids)} utterances; lower data.max_frames (or data.max_batch_size) and run the "
                    "same command again to resume from the last checkpoint"
                ) from None
            log.warning("out of GPU memory on a batch of %d utterances; skipped the step", len(batch.ids))
            self.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            return None
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.optim.grad_clip)
        loss, attention_loss, ctc_loss, grad_norm = torch.cat([sums, norm.float()[None]]).tolist()  # one wait a step
        if not all_agree(math.isfinite(loss) and math.isfinite(grad_norm), self.world):
            if self.scaler.is_enabled():
                self.scaler.update()  # an fp16 overflow: the scale comes down for the next step
            log.warning("step %d: non-finite loss or gradient; skipped", self.progress.step)
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": loss, "attention_loss": attention_loss, "ctc_loss": ctc_loss, "grad_norm": grad_norm}

    # ------------------------------------------------------------- validation
    def validate(self) -> dict[str, float]:
        """Dev loss and greedy WER/CER; writes attention plots. Runs on the main process."""
        config = self.config
        try:
            metrics, plots = dev_metrics(
                self.model, self.frontend, self.data.dev, self.vocab, config.decoding, self.precision, self.device,
                config.data.num_workers, config.plot_utterances,
            )  # fmt: skip
        except ValidationError as error:
            raise TrainingError(f"{', '.join(config.data.dev_manifests)}: {error}") from None
        write_plots(plots, self.exp_dir / "plots", self.progress.step, config.features.hop_ms / 1000, self.writer)
        return metrics

    def _validated_now(self) -> bool:
        validations = self.progress.validations
        return bool(validations) and validations[-1]["step"] == self.progress.step

    def _validate_and_save(self) -> None:
        """Validate (once per step), feed the schedule on every rank, keep the best weights, save."""
        if not self._validated_now():
            # rank 0 decodes the dev set; every rank applies the same result to its schedule
            metrics = broadcast(self.validate() if self.world.is_main else None, self.world)
            self.schedule.observe(metrics[self.config.text.metric])
            self.progress.validations.append({"step": self.progress.step, **metrics})
            if self.world.is_main:
                self._report(metrics)
        self._save()

    def _report(self, metrics: dict[str, float]) -> None:
        """Log, write TensorBoard scalars and validations.json, keep the weights if among the best."""
        log.info(
            "step %d: dev loss %.3f, WER %.2f%%, CER %.2f%%",
            self.progress.step,
            metrics["loss"],
            metrics["wer"],
            metrics["cer"],
        )
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(f"dev/{key}", value, self.progress.step)
        best = {"model": self.model.state_dict(), "stats": self.stats.to_dict(), "tokens": list(self.vocab.tokens)}
        best.update(wer=metrics["wer"], cer=metrics["cer"], longest_utterance_seconds=self.data.longest_seconds)
        config = self.config
        keep_if_best(self.exp_dir / "best", self.progress.validations, config.average_best, best, config.text.metric)
        atomic_write_text(self.exp_dir / "validations.json", json.dumps(self.progress.validations, indent=1) + "\n")

    # ------------------------------------------------------------------- run
    def run(self) -> Path:
        """Train until `epochs` or `max_steps`, then export `EXP_DIR/model`; returns its path."""
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        if self.world.is_main and self.device.type == "cuda":  # where "auto" has a choice to make
            log.info("precision %s (%s on %s)", self.precision, self.config.precision, self.device)
        if self.world.is_main:
            atomic_write_text(self.exp_dir / "config.yaml", dump_config(self.config))
            self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
        try:
            self._loop()
        finally:
            if self.writer is not None:
                self.writer.close()
        model_dir = self.exp_dir / "model"
        if self.world.is_main:
            export_average(self.exp_dir, self.config, self.config.average_best, model_dir)
        barrier(self.world)
        leave(self.world)
        return model_dir

    def _loop(self) -> None:
        config = self.config
        while not self._done():
            # the first step is always taken (a run that took none has nothing to export); all ranks agree
            if self.progress.step > 0 and not all_agree(self.budget.epoch_fits(), self.world):
                self._log_budget(f"the next epoch would take about {self.budget.longest_epoch / 60:.1f}")
                break
            epoch_started, whole_epoch = self.budget.clock(), self.progress.batch_in_epoch == 0
            throughput = Throughput("utterances")
            first_step, skipped_before = self.progress.step, self.progress.skipped_steps
            loader = self._loader()
            batches: Iterable[Any] = loader
            if self.world.is_main:
                batches = self.track(loader, len(self.sampler), f"epoch {self.progress.epoch + 1}")
            out_of_time = False
            for group in _groups(batches, config.accumulate_grad):
                self._count_bad_audio(group)
                losses = self._train_step(group)
                self.progress.batch_in_epoch += len(group)
                throughput.items += sum(len(batch.ids) for batch in group)
                if self._after_step(losses, throughput, batches):
                    break
                if config.max_minutes is not None and not all_agree(not self.budget.time_up(), self.world):
                    out_of_time = True
                    break
            else:
                self._check_epoch(self.progress.step - first_step, self.progress.skipped_steps - skipped_before)
                self.progress.epoch += 1
                self.progress.batch_in_epoch = 0
                self.bad_audio = 0
            self._validate_and_save()
            if out_of_time:
                self._log_budget(f"time ran out in epoch {self.progress.epoch + 1}")
                break
            if whole_epoch and self.progress.batch_in_epoch == 0:
                self.budget.epoch_took(self.budget.clock() - epoch_started)

    def _log_budget(self, why: str) -> None:
        if self.world.is_main:
            log.info(
                "stopped at step %d: max_minutes=%g, %.1f minutes spent; %s",
                self.progress.step,
                self.config.max_minutes,
                self.budget.elapsed() / 60,
                why,
            )

    def _count_bad_audio(self, batches: list[Any]) -> None:
        """Warn about each utterance whose audio failed; stop when too many of the epoch have."""
        for batch in batches:
            for line in batch.failed:
                log.warning("skipped %s", line)
            self.bad_audio += len(batch.failed)
        limit = self.config.data.max_bad_audio_fraction * len(self.dataset) / self.world.size
        if self.bad_audio > limit:
            raise TrainingError(
                f"{self.bad_audio} utterances of epoch {self.progress.epoch + 1} could not be decoded (the last: "
                f"{batches[-1].failed[-1] if batches[-1].failed else 'see the warnings'}), more than "
                f"data.max_bad_audio_fraction={self.config.data.max_bad_audio_fraction}; "
                "asr prepare ... --verify finds and leaves out such files"
            )

    def _check_epoch(self, steps: int, skipped: int) -> None:
        """Stop when none of the epoch's `steps` was applied: every loss was NaN or infinite."""
        if steps and skipped == steps:
            raise TrainingError(
                f"every step of epoch {self.progress.epoch + 1} was skipped (non-finite loss or gradient); "
                "check the audio levels and data.stats, or lower optim.schedule.lr"
            )


def loss_weights(batches: Sequence[Batch], world: World) -> tuple[list[list[float]], bool]:
    """What each batch's per-character CTC loss and per-token attention loss (its own means) are
    multiplied by ((len(batches), 2) numbers), so that the step's gradient, DDP's average over
    `world` included, is that of the sums over every rank's batches divided by their global
    character and token counts, as ESPnet and icefall normalise; not a mean of per-rank means.
    One process with one batch: 1 and 1. And whether any rank holds a batch that lost all its
    utterances (then every rank skips the step). The counts come from the host lengths: one
    collective, one wait, before the step."""
    counts = torch.tensor(
        [[float(b.target_lengths.sum()), float(b.target_lengths.sum()) + len(b.target_lengths), float(not b.ids)]
         for b in batches],
        dtype=torch.float64,
    )  # (n, 3): characters, tokens (characters and one <eos> each), empty  # fmt: skip
    everywhere = all_sum(counts.sum(dim=0), world)  # (3,)
    weights = counts[:, :2] * world.size / everywhere[:2].clamp(min=1)
    return weights.tolist(), bool(everywhere[2] > 0)


def _groups(batches: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive groups of `size` items; the last may be shorter."""
    group: list[T] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def train(
    config: TrainConfig, exp_dir: str | Path, device: str = "auto", track: Track = no_progress, replace: bool = False
) -> Path:
    """Train (or resume) in `exp_dir`; returns the exported model directory.

    The first process holds `exp_dir` exclusively: a second `asr train` into it stops with
    one line. A folder that holds another run without checkpoints to resume (a finished one
    whose checkpoints were removed, or another config) is refused unless `replace`, which
    removes that run's outputs first (the first process, before the others can read them:
    they wait for it to join the process group). A full disk stops training with one line;
    the last checkpoint stays intact.
    """
    try:
        with exclusive_folder(exp_dir, "asr train") if launched_as_main() else contextlib.nullcontext():
            if replace and launched_as_main():
                removed = clear_run(Path(exp_dir))
                if removed:
                    log.info("--replace: removed %s of %s", ", ".join(removed), exp_dir)
            return Trainer(config, Path(exp_dir), device, track).run()
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EROFS):
            raise
        where = error.filename or exp_dir
        raise TrainingError(
            f"{where}: {error.strerror.lower()}; the last complete checkpoint is intact: "
            "make room (or fix the folder) and run the same command again to resume"
        ) from None
