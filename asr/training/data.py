"""What a training run reads: its training and dev utterances, filtered, checked and batched.

`load_training_data` reads the manifests of a `DataConfig`, drops what the filters and the
learnability rule (`asr.training.learnable`) leave out with one line of counts, reads every audio header
so that a broken file stops training before it starts, and batches the training utterances by
length for this process of the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from asr.data.dataset import SpeechDataset
from asr.data.manifest import Utterance, filter_utterances, first_unreadable, read_manifest
from asr.data.sampler import BucketBatchSampler
from asr.errors import TrainingError
from asr.frontend.augment import SPEED_FACTORS, noise_files
from asr.text import Vocabulary, normalize
from asr.training.config import TrainConfig
from asr.training.distributed import World
from asr.training.learnable import find_unlearnable, rule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    """The training set (with its batches for this process) and the dev set of a run."""

    dataset: SpeechDataset
    sampler: BucketBatchSampler
    dev: list[Utterance]
    longest_seconds: float
    """The longest training utterance before speed perturbation, in seconds (saved with the model)."""


def load_training_data(config: TrainConfig, vocab: Vocabulary, world: World) -> TrainingData:
    """The data of `config.data` for process `world.rank` of `world.size`; `TrainingError` names the
    key or manifest at fault (unset, empty after the filters, too much unlearnable, unreadable audio)."""
    data = config.data
    for key in ("train", "dev"):
        if not getattr(data, key):
            raise TrainingError(f"data.{key} is not set; give it in the config or with --set data.{key}=PATH")
    speeds = SPEED_FACTORS if data.speed_perturb else (1.0,)
    train: list[Utterance] = []
    for source in data.sources:
        kept = filter_utterances(read_manifest(source.manifest), data.filters, world.is_main)
        if not kept:
            raise TrainingError(f"{source.manifest}: no utterance is left after the filters in data.filters")
        train += learnable(kept, "training", source.manifest, max(speeds), config, vocab, world.is_main) * source.repeat
    dev = [u for u in read_manifest(data.dev)[: data.dev_utterances] if normalize(u.text)]
    if not dev:
        raise TrainingError(f"{data.dev}: no dev utterance has a transcript with a character to score")
    dev = learnable(dev, "dev", data.dev, 1.0, config, vocab, world.is_main)
    _check_headers(list({u.audio: u for u in train}.values()) + dev)
    if data.augment.noise_dir is not None:
        noise_files(data.augment.noise_dir)  # a bad folder fails now, not inside a loader worker
    dataset = SpeechDataset(train, vocab, speeds, seed=config.seed, augment=data.augment)
    # the batch's padded frames at the slowest speed, the longest an utterance can become
    lengths = [config.features.frames_for_duration(u.duration / min(speeds)) for u in train]
    try:
        sampler = BucketBatchSampler(
            lengths,
            data.max_frames,
            seed=config.seed,
            max_batch_size=data.max_batch_size,
            num_replicas=world.size,
            rank=world.rank,
            sorted_epochs=data.sorted_epochs,
        )
    except ValueError as error:
        raise TrainingError(f"data.max_frames: {error}") from None
    return TrainingData(dataset, sampler, dev, max(u.duration for u in train))


def learnable(
    utterances: list[Utterance],
    subset: str,
    manifest: str,
    speed: float,
    config: TrainConfig,
    vocab: Vocabulary,
    announce: bool = True,
) -> list[Utterance]:
    """`utterances` without those the model cannot learn at `speed` (a warning of counts when
    `announce`); refuses more than `data.max_unlearnable_fraction` of them."""
    found = find_unlearnable(utterances, vocab, config.features, config.model, speed)
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
    if announce:
        log.warning("dropped %s: %s", counts, rule(config.model))
    dropped = {id(item.utterance) for item in found}
    return [u for u in utterances if id(u) not in dropped]


def _check_headers(utterances: list[Utterance]) -> None:
    """Read every audio header now, so a missing or broken file stops training before it starts."""
    found = first_unreadable(utterances)
    if found is not None:
        raise TrainingError(f"utterance {found[0].id}: {found[1]}")
