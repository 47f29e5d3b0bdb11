"""What a training run reads: its training and dev utterances, filtered, checked and batched.

`load_training_data` reads the manifests of a `DataConfig`, drops what the filters and the
learnability rule (`asr.training.learnable`) leave out with one line of counts, reads every audio header
so that a broken file stops training before it starts, and batches the training utterances by
length for this process of the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.data.dataset import SpeechDataset
from asr.data.manifest import Utterance, check_audio, draw_across_speakers, filter_utterances, read_manifest
from asr.data.sampler import BucketBatchSampler
from asr.errors import TrainingError
from asr.frontend.augment import SPEED_FACTORS, noise_files
from asr.text import (
    ENGLISH,
    UNK,
    TextConfig,
    Vocabulary,
    VocabularyError,
    build_vocabulary,
    character_counts,
    listed_counts,
    normalize,
)
from asr.training.config import DataConfig, TrainConfig
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
    vocab: Vocabulary
    """What the model spells: the english alphabet, or the characters of the training transcripts."""


def load_training_data(config: TrainConfig, world: World) -> TrainingData:
    """The data of `config.data` for process `world.rank` of `world.size`, and the vocabulary its
    training transcripts give (`config.text`); `TrainingError` names the key or manifest at fault
    (unset, empty after the filters, rare characters refused, too much unlearnable, unreadable audio)."""
    data = config.data
    for key in ("train", "dev"):
        if not getattr(data, key):
            raise TrainingError(f"data.{key} is not set; give it in the config or with --set data.{key}=PATH")
    speeds = SPEED_FACTORS if data.speed_perturb else (1.0,)
    sources = []
    for source in data.sources:
        listed = audio_checked(read_manifest(source.manifest), source.manifest, world.is_main)
        kept = filter_utterances(listed, data.filters, world.is_main, config.text)
        if not kept:
            raise TrainingError(f"{source.manifest}: no utterance is left after the filters in data.filters")
        sources.append((source, kept))
    vocab = training_vocabulary([u.text for _, kept in sources for u in kept], config.text, world.is_main)
    train: list[Utterance] = []
    for source, kept in sources:
        train += learnable(kept, "training", source.manifest, max(speeds), config, vocab, world.is_main) * source.repeat
    dev = []
    for manifest, drawn in dev_sets(data, config.seed, config.text).items():
        drawn = audio_checked(drawn, manifest, world.is_main)
        dev += learnable(drawn, "dev", manifest, 1.0, config, vocab, world.is_main)
        if world.is_main:
            warn_unseen_characters(drawn, manifest, vocab)
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
    return TrainingData(dataset, sampler, dev, max(u.duration for u in train), vocab)


def warn_unseen_characters(utterances: Sequence[Utterance], manifest: str, vocab: Vocabulary) -> None:
    """Log the characters of these (dev) transcripts that the vocabulary lacks, with their counts:
    spelt `<unk>` in the dev loss, and errors in the dev score."""
    known = set(vocab.tokens)
    unseen = Counter(ch for u in utterances for ch in vocab.normalize(u.text) if ch not in known)
    if unseen:
        log.warning(
            "%s: %d characters the training transcripts never hold, spelt %s and scored as errors: %s",
            manifest, sum(unseen.values()), UNK, listed_counts(dict(unseen.most_common())),
        )  # fmt: skip


def training_vocabulary(transcripts: list[str], text: TextConfig, announce: bool = True) -> Vocabulary:
    """The vocabulary of `text`'s normaliser drawn from the training `transcripts` (every process of
    a run draws the same from the same manifests); logged with its rare characters if `announce`."""
    try:
        drawn = build_vocabulary(character_counts(transcripts, text), text)
    except VocabularyError as error:
        raise TrainingError(f"data.train: {error}") from None
    if announce and not text.fixed_alphabet:
        log.info("%s", drawn.summary())
    return drawn.vocab


def dev_sets(data: DataConfig, seed: int, text: TextConfig = ENGLISH) -> dict[str, list[Utterance]]:
    """The utterances each dev manifest gives validation: those with a character to score, and
    with `data.dev_utterances` set, that many in all, in equal `shares` of the manifests, each
    share drawn across its manifest's speakers (`draw_across_speakers`, seeded by `seed`).
    Benchmarks that train other toolkits validate them on the same utterances."""
    scored = {
        manifest: [u for u in read_manifest(manifest) if normalize(u.text, text)] for manifest in data.dev_manifests
    }
    for manifest, utterances in scored.items():
        if not utterances:
            raise TrainingError(f"{manifest}: no dev utterance has a transcript with a character to score")
    counts = shares(scored, data.dev_utterances)
    return {
        manifest: draw_across_speakers(utterances, count, seed)
        for (manifest, utterances), count in zip(scored.items(), counts, strict=True)
    }


def most_dev_utterances(data: DataConfig) -> int:
    """At most how many utterances validation decodes: `dev_utterances`, else the dev manifests'
    lines (counted without parsing; a missing manifest counts nothing here and fails later)."""
    if data.dev_utterances is not None:
        return data.dev_utterances
    lines = 0
    for manifest in data.dev_manifests:
        if Path(manifest).is_file():
            with open(manifest, "rb") as handle:
                lines += sum(1 for line in handle if line.strip())
    return lines


def shares(parts: Mapping[str, Sequence[object]], count: int | None) -> list[int]:
    """How many of `count` items (None: all) each of `parts` gives: equal shares, and what a part
    too small for its share cannot give is shared among the others."""
    sizes = [len(items) for items in parts.values()]
    if count is None:
        return sizes
    given = [0] * len(sizes)
    while sum(given) < min(count, sum(sizes)):
        for i, size in enumerate(sizes):
            if given[i] < size and sum(given) < count:
                given[i] += 1
    return given


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


def audio_checked(utterances: list[Utterance], manifest: str, announce: bool = True) -> list[Utterance]:
    """`utterances` once every audio header has been read (a missing or broken file stops training
    before it starts, naming the utterance), with durations the audio contradicts corrected (a
    warning of counts when `announce`): the filters and the batches go by them."""
    checked = check_audio(utterances)
    if checked.unreadable is not None:
        utterance, error = checked.unreadable
        raise TrainingError(f"utterance {utterance.id}: {error}")
    if checked.corrected and announce:
        log.warning("%s", checked.summary(manifest))
    return checked.utterances
