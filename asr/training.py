"""Training: the config, the loop, validation, checkpoints and the final model directory.

The loop is a plain `for batch in loader` that you can read top to bottom. Every
step's randomness (dropout, SpecAugment, scheduled sampling) is seeded from
(seed, step), data order from (seed, epoch), so a run resumed from a checkpoint
reaches the same weights as one that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import json
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from asr.atomic import atomic_write_text, exclusive_folder
from asr.augment import noise_files
from asr.checkpoint import (
    CheckpointError,
    average_state_dicts,
    export_model_dir,
    list_checkpoints,
    load_model_dir,
    load_training_state,
    remove_stale_temporaries,
    save_training_state,
)
from asr.config import config_changes, dump_config, to_dict
from asr.data import (
    BucketBatchSampler,
    SpeechDataset,
    Utterance,
    collate,
    filter_utterances,
    first_unreadable,
    read_manifest,
)
from asr.decoding import DecodingError
from asr.distributed import all_agree, barrier, broadcast, init_world, launched_as_main, leave
from asr.errors import TrainingError
from asr.features import SPEED_FACTORS, FeatureConfig, Frontend, NormStats
from asr.learnable import find_unlearnable, rule
from asr.model import LAS
from asr.outputs import safe_file_name
from asr.plotting import attention_figure, save_figure
from asr.progress import Track, no_progress
from asr.recognize import search_settings
from asr.schedule import LRSchedule
from asr.text import Vocabulary, normalize
from asr.train_config import RESUMABLE_CHANGES, TrainConfig
from asr.train_steps import Progress, StepBookkeeping, Throughput, seed_step
from asr.validation import ValidationError, autocast, dev_metrics, uses_bf16

log = logging.getLogger(__name__)

T = TypeVar("T")


def _check_headers(utterances: list[Utterance]) -> None:
    """Read every audio header now, so a missing or broken file stops training before it starts."""
    found = first_unreadable(utterances)
    if found is not None:
        raise TrainingError(f"utterance {found[0].id}: {found[1]}")


def _frames(duration: float, features: FeatureConfig, slowest: float) -> int:
    return features.frames_for_duration(duration / slowest)


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
        self.world = init_world(device)
        self.device = self.world.device
        uses_bf16(config.precision, self.device)  # a precision this device cannot run is refused before any work
        self.track = track
        self.vocab = Vocabulary.default()
        self.progress = Progress()
        self.bad_audio = 0  # utterances of this epoch whose audio failed to decode
        resumed = self._latest_state()
        self.stats = self._stats(resumed)
        self._load_data()
        model_config = dataclasses.replace(config.model, vocab_size=len(self.vocab))
        torch.manual_seed(config.seed)
        self.model = LAS(model_config).to(self.device)
        try:  # validation searches with these settings
            search_settings(config.decoding, self.model)
        except DecodingError as error:
            raise TrainingError(str(error)) from None
        if config.init_from is not None and resumed is None:
            self._initialise(config.init_from)
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
    def _stats(self, resumed: dict[str, Any] | None) -> NormStats:
        """The normalisation statistics: those the run started with when resuming, else data.stats."""
        if resumed is not None and "stats" in resumed:
            return NormStats.from_dict(resumed["stats"])
        path = self.config.data.stats
        if not path:
            raise TrainingError("data.stats is not set; give it in the config or with --set data.stats=PATH")
        stats = NormStats.load(path)
        if stats.features is not None and stats.features != self.config.features:
            changed = config_changes(to_dict(stats.features), to_dict(self.config.features), "features")
            raise TrainingError(
                f"{path}: computed with other feature settings than this config's ({', '.join(changed)}); "
                "run asr stats --config CONFIG again"
            )
        return stats

    def _load_data(self) -> None:
        data = self.config.data
        for key in ("train", "dev"):
            if not getattr(data, key):
                raise TrainingError(f"data.{key} is not set; give it in the config or with --set data.{key}=PATH")
        speeds = SPEED_FACTORS if data.speed_perturb else (1.0,)
        train: list[Utterance] = []
        for source in data.sources:
            kept = filter_utterances(read_manifest(source.manifest), data.filters, self.world.is_main)
            if not kept:
                raise TrainingError(f"{source.manifest}: no utterance is left after the filters in data.filters")
            train += self._learnable(kept, "training", source.manifest, max(speeds)) * source.repeat
        dev = [u for u in read_manifest(data.dev)[: data.dev_utterances] if normalize(u.text)]
        if not dev:
            raise TrainingError(f"{data.dev}: no dev utterance has a transcript with a character to score")
        self.dev = self._learnable(dev, "dev", data.dev, 1.0)
        _check_headers(list({u.audio: u for u in train}.values()) + self.dev)
        self.longest_seconds = max(u.duration for u in train)
        if data.augment.noise_dir is not None:
            noise_files(data.augment.noise_dir)  # a bad folder fails now, not inside a loader worker
        self.dataset = SpeechDataset(train, self.vocab, speeds, seed=self.config.seed, augment=data.augment)
        lengths = [_frames(u.duration, self.config.features, min(speeds)) for u in train]
        try:
            self.sampler = BucketBatchSampler(
                lengths,
                data.max_frames,
                seed=self.config.seed,
                max_batch_size=data.max_batch_size,
                num_replicas=self.world.size,
                rank=self.world.rank,
                sorted_epochs=data.sorted_epochs,
            )
        except ValueError as error:
            raise TrainingError(f"data.max_frames: {error}") from None

    def _initialise(self, directory: str) -> None:
        """The weights of the model directory `directory`, refused in one line when its vocabulary,
        features or shapes are not this run's."""
        try:
            loaded = load_model_dir(directory)
        except CheckpointError as error:
            raise TrainingError(f"init_from: {error}") from None
        if loaded.vocab != self.vocab:
            raise TrainingError(f"init_from: {directory}: its tokens.txt is not this toolkit's vocabulary")
        if loaded.features != self.config.features:
            changed = config_changes(to_dict(loaded.features), to_dict(self.config.features), "features")
            raise TrainingError(f"init_from: {directory}: trained with other features ({', '.join(changed)})")
        try:
            self.model.load_state_dict(loaded.model.state_dict())
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0].rstrip(":")
            raise TrainingError(
                f"init_from: {directory}: its weights do not fit this config's model section ({first})"
            ) from None
        if self.world.is_main:
            log.info("starting from the weights of %s", directory)

    def _learnable(self, utterances: list[Utterance], subset: str, manifest: str, speed: float) -> list[Utterance]:
        """`utterances` without those the model cannot learn (one line of counts); refuses too many."""
        config = self.config
        found = find_unlearnable(utterances, self.vocab, config.features, config.model, speed)
        if not found:
            return utterances
        share = len(found) / len(utterances)
        counts = f"{len(found)} of {len(utterances)} {subset} utterances ({100 * share:.1f} %) in {manifest}"
        if share > config.data.max_unlearnable_fraction:
            raise TrainingError(
                f"{counts} cannot be learnt ({rule(config.model)}), more than "
                f"data.max_unlearnable_fraction={config.data.max_unlearnable_fraction}; lower the subsampling "
                f"(model.listener.reduce, model.listener.frontend) or train without CTC (model.ctc_weight=0)"
            )
        if self.world.is_main:
            log.warning("dropped %s: %s", counts, rule(config.model))
        dropped = {id(item.utterance) for item in found}
        return [u for u in utterances if id(u) not in dropped]

    def _wrap(self, model: LAS) -> torch.nn.Module:
        if self.config.compile:
            compile_model(model)
        if not self.world.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    # --------------------------------------------------------------- resuming
    @property
    def checkpoints(self) -> Path:
        return self.exp_dir / "checkpoints"

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "config": dump_config(self.config),
            "stats": self.stats.to_dict(),
            "longest_utterance_seconds": self.longest_seconds,
        }

    def _latest_state(self) -> dict[str, Any] | None:
        """The newest readable checkpoint of EXP_DIR, if the run has one (a damaged newest one is passed
        over with a warning); refuses a config that changed what is done, and a run none of whose
        checkpoints can be read (starting afresh would overwrite them)."""
        for folder in (self.checkpoints, self.exp_dir / "best"):
            if remove_stale_temporaries(folder):
                log.warning("removed the temporary files of an interrupted checkpoint write in %s", folder)
        state = None
        found = list_checkpoints(self.checkpoints)
        for path in reversed(found):
            try:
                state = load_training_state(path)
            except CheckpointError as error:
                log.warning("%s; resuming from the checkpoint before it", error)
                continue
            missing = sorted(set(CHECKPOINT_KEYS) - set(state))
            if missing:
                raise TrainingError(f"{path}: not a training checkpoint of asr train (no {', '.join(missing)})")
            log.info("resuming from %s", path)
            break
        if state is None and found:
            raise TrainingError(
                f"{self.checkpoints}: none of its {len(found)} checkpoints can be read (see the warnings); move "
                "the folder away to train afresh, or use a new EXP_DIR"
            )
        if state is None:
            return None
        changed = [
            key
            for key in config_changes(yaml.safe_load(state["config"]), to_dict(self.config))
            if key not in RESUMABLE_CHANGES
        ]
        if changed:
            raise TrainingError(
                f"{self.exp_dir}: holds a run with a different config ({', '.join(changed)} changed); use a new "
                f"EXP_DIR, or the same config (a resumed run may change only {', '.join(sorted(RESUMABLE_CHANGES))})"
            )
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.progress = Progress(**state["progress"])
        log.info("resumed at step %d, epoch %d", self.progress.step, self.progress.epoch)

    def _save(self) -> None:
        if self.world.is_main:
            save_training_state(self._state(), self.checkpoints, self.progress.step, self.config.keep_checkpoints)
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
        seed_step(config.seed, self.progress.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr(self.progress.step)
        self.model.train()
        self.frontend.train()
        self.optimizer.zero_grad(set_to_none=True)
        if not all_agree(all(batch.ids for batch in batches), self.world):
            log.warning("step %d: a batch lost all its utterances to unreadable audio; skipped", self.progress.step)
            return None
        sums = torch.zeros(3, device=self.device)  # loss, attention loss, CTC loss: read once, after the step
        try:
            for i, batch in enumerate(batches):
                batch = batch.to(self.device)
                last = i == len(batches) - 1
                # DDP averages gradients across processes on the last batch only
                sync = contextlib.nullcontext() if last or not self.world.distributed else self.step_model.no_sync()
                with sync:
                    with autocast(config.precision, self.device):
                        features, lengths = self.frontend(batch.waveforms, batch.waveform_lengths)
                        losses = self.step_model(
                            features, lengths, batch.targets, batch.target_lengths, self._sampling_prob()
                        )
                    (losses.total / len(batches)).backward()
                sums += torch.stack([losses.total, losses.attention, losses.ctc]).detach().float() / len(batches)
        except torch.OutOfMemoryError:
            if self.world.distributed:
                raise
            log.warning("out of GPU memory on a batch of %d utterances; skipped the step", len(batch.ids))
            self.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            return None
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.optim.grad_clip)
        loss, attention_loss, ctc_loss, grad_norm = torch.cat([sums, norm.float()[None]]).tolist()  # one wait a step
        if not all_agree(math.isfinite(loss) and math.isfinite(grad_norm), self.world):
            log.warning("step %d: non-finite loss or gradient; skipped", self.progress.step)
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        return {"loss": loss, "attention_loss": attention_loss, "ctc_loss": ctc_loss, "grad_norm": grad_norm}

    # ------------------------------------------------------------- validation
    def validate(self) -> dict[str, float]:
        """Dev loss and greedy WER/CER; writes attention plots. Runs on the main process."""
        config = self.config
        try:
            metrics, plots = dev_metrics(
                self.model, self.frontend, self.dev, self.vocab, config.decoding, config.precision, self.device,
                config.data.num_workers, config.plot_utterances,
            )  # fmt: skip
        except ValidationError as error:
            raise TrainingError(f"{config.data.dev}: {error}") from None
        self._plot(plots)
        return metrics

    def _plot(self, plots: list[tuple[str, Any, np.ndarray]]) -> None:
        """Write EXP_DIR/plots/NAME.png, NAME a safe file name made of the utterance id (`safe_file_name`)."""
        folder = self.exp_dir / "plots"
        for utterance_id, hypothesis, features in plots:
            characters = list(hypothesis.text) + ["<eos>"]
            attention = hypothesis.attention.float().cpu().numpy()[: len(characters)]
            frame_seconds = self.config.features.hop_ms / 1000
            title = f"{utterance_id} step {self.progress.step}: {hypothesis.text}"
            figure = attention_figure(attention, characters[: attention.shape[0]], features, frame_seconds, title)
            if self.writer is not None:
                self.writer.add_figure(f"attention/{utterance_id}", figure, self.progress.step, close=False)
            save_figure(figure, folder / f"{safe_file_name(utterance_id)}.png")

    def _validated_now(self) -> bool:
        validations = self.progress.validations
        return bool(validations) and validations[-1]["step"] == self.progress.step

    def _validate_and_save(self) -> None:
        """Validate (once per step), feed the schedule on every rank, keep the best weights, save."""
        if not self._validated_now():
            # rank 0 decodes the dev set; every rank applies the same result to its schedule
            metrics = broadcast(self.validate() if self.world.is_main else None, self.world)
            self.schedule.observe(metrics["wer"])
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
        self._keep_if_best(metrics["wer"])
        atomic_write_text(self.exp_dir / "validations.json", json.dumps(self.progress.validations, indent=1) + "\n")

    def _keep_if_best(self, wer: float) -> None:
        """Keep these weights in EXP_DIR/best if they rank among the best `average_best` by dev WER."""
        ranked = sorted(self.progress.validations, key=lambda v: (v["wer"], -v["step"]))
        best_steps = {int(v["step"]) for v in ranked[: self.config.average_best]}
        folder = self.exp_dir / "best"
        if self.progress.step in best_steps:
            state = {"model": self.model.state_dict(), "wer": wer, "stats": self.stats.to_dict()}
            state["longest_utterance_seconds"] = self.longest_seconds
            save_training_state(state, folder, self.progress.step, keep=10**9)
        for path in list_checkpoints(folder):
            if int(path.stem.split("-")[1]) not in best_steps:
                path.unlink()

    # ------------------------------------------------------------------- run
    def run(self) -> Path:
        """Train until `epochs` or `max_steps`, then export `EXP_DIR/model`; returns its path."""
        self.exp_dir.mkdir(parents=True, exist_ok=True)
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
            self.export(model_dir)
        barrier(self.world)
        leave(self.world)
        return model_dir

    def _loop(self) -> None:
        config = self.config
        while not self._done():
            throughput = Throughput("utterances")
            first_step, skipped_before = self.progress.step, self.progress.skipped_steps
            loader = self._loader()
            batches: Iterable[Any] = loader
            if self.world.is_main:
                batches = self.track(loader, len(self.sampler), f"epoch {self.progress.epoch + 1}")
            for group in _groups(batches, config.accumulate_grad):
                self._count_bad_audio(group)
                losses = self._train_step(group)
                self.progress.batch_in_epoch += len(group)
                throughput.items += sum(len(batch.ids) for batch in group)
                if self._after_step(losses, throughput, batches):
                    break
            else:
                self._check_epoch(self.progress.step - first_step, self.progress.skipped_steps - skipped_before)
                self.progress.epoch += 1
                self.progress.batch_in_epoch = 0
                self.bad_audio = 0
            self._validate_and_save()

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

    def export(self, model_dir: Path) -> None:
        export_average(self.exp_dir, self.config, self.config.average_best, model_dir)


CHECKPOINT_KEYS = ("model", "optimizer", "schedule", "progress", "config", "stats", "longest_utterance_seconds")
"""What a training checkpoint holds (and `_state` writes)."""


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


def export_average(exp_dir: str | Path, config: TrainConfig, count: int, model_dir: str | Path) -> int:
    """Average the `count` best kept weights of `exp_dir` by dev WER into a model directory.

    Returns how many were averaged. Falls back to the latest checkpoint if no
    validation kept any. The normalisation statistics and the longest training
    utterance come from the run's own checkpoints, not from files that may have
    changed since.
    """
    exp_dir = Path(exp_dir)
    kept = [load_training_state(p) for p in list_checkpoints(exp_dir / "best")]
    kept.sort(key=lambda state: state["wer"])
    kept = kept[:count]
    if not kept:
        latest = list_checkpoints(exp_dir / "checkpoints")
        if not latest:
            raise TrainingError(f"{exp_dir}: no checkpoint to export; has training run here?")
        kept = [load_training_state(latest[-1])]
    if "stats" not in kept[0]:
        raise TrainingError(f"{exp_dir}: its checkpoints predate the statistics they now hold; train it again")
    vocab = Vocabulary.default()
    record = {
        "model": to_dict(dataclasses.replace(config.model, vocab_size=len(vocab))),
        "features": to_dict(config.features),
        "decoding": to_dict(config.decoding),
        "training": {"longest_utterance_seconds": round(kept[0]["longest_utterance_seconds"], 2)},
    }
    states = [state["model"] for state in kept]
    export_model_dir(model_dir, record, average_state_dicts(states), vocab, NormStats.from_dict(kept[0]["stats"]))
    log.info("exported %s (average of %d checkpoints)", model_dir, len(states))
    return len(states)


def train(config: TrainConfig, exp_dir: str | Path, device: str = "auto", track: Track = no_progress) -> Path:
    """Train (or resume) in `exp_dir`; returns the exported model directory.

    The first process holds `exp_dir` exclusively: a second `asr train` into it stops with
    one line. A full disk stops training with one line; the last checkpoint stays intact.
    """
    try:
        with exclusive_folder(exp_dir, "asr train") if launched_as_main() else contextlib.nullcontext():
            return Trainer(config, Path(exp_dir), device, track).run()
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            raise
        where = error.filename or exp_dir
        raise TrainingError(
            f"{where}: {error.strerror.lower()}; the last complete checkpoint is intact: "
            "make room (or fix the folder) and run the same command again to resume"
        ) from None
