"""What a training run keeps on disk: its checkpoints, its best weights, and the model it exports.

EXP_DIR/checkpoints holds the newest `keep_checkpoints` training states (a run resumes from the
newest readable one); EXP_DIR/best the weights of the best validations by dev WER, which
`export_average` averages into the model directory. `initial_stats` and `initialise_from` give a
new run its normalisation statistics and, for fine-tuning, its first weights.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

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
from asr.config import config_changes, read_yaml, to_dict
from asr.errors import TrainingError, UserError
from asr.frontend.features import FeatureConfig
from asr.frontend.normalization import NormStats
from asr.model.listener import renamed_old_directions
from asr.text import Vocabulary
from asr.training.config import RESUMABLE_CHANGES, TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_KEYS = ("model", "optimizer", "schedule", "progress", "config", "stats", "longest_utterance_seconds")
"""What a training checkpoint holds."""


def latest_state(exp_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The newest readable checkpoint of `exp_dir`, if the run has one (a damaged newest one is
    passed over with a warning); refuses a config that changed what is done, and a run none of whose
    checkpoints can be read (starting afresh would overwrite them)."""
    checkpoints = exp_dir / "checkpoints"
    for folder in (checkpoints, exp_dir / "best"):
        if remove_stale_temporaries(folder):
            log.warning("removed the temporary files of an interrupted checkpoint write in %s", folder)
    state = None
    found = list_checkpoints(checkpoints)
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
            f"{checkpoints}: none of its {len(found)} checkpoints can be read (see the warnings); move "
            "the folder away to train afresh, or use a new EXP_DIR"
        )
    if state is None:
        check_no_other_run(exp_dir, config)
        return None
    changed = _changes(yaml.safe_load(state["config"]), config)
    if changed:
        raise TrainingError(
            f"{exp_dir}: holds a run with a different config ({', '.join(changed)} changed); use a new "
            f"EXP_DIR, or the same config (a resumed run may change only {', '.join(sorted(RESUMABLE_CHANGES))})"
        )
    return state


RUN_OUTPUTS = ("checkpoints", "best", "model", "validations.json", "tensorboard", "plots", "config.yaml")
"""What a training run writes into its EXP_DIR (`--replace` removes them, and nothing else)."""


def _changes(recorded: Any, config: TrainConfig) -> list[str]:
    """The keys of `config` that differ from a run's `recorded` config, less those a resumed run may change."""
    return [key for key in config_changes(recorded, to_dict(config)) if key not in RESUMABLE_CHANGES]


def check_no_other_run(exp_dir: Path, config: TrainConfig) -> None:
    """Refuse to train afresh in an `exp_dir` without checkpoints that holds what a run made (its
    model, best checkpoints or validations: a finished run whose checkpoints were removed) or a
    config.yaml with other settings: starting would overwrite them. A run stopped before its first
    checkpoint, with the same config, starts again."""
    made = [name for name in ("model", "best", "validations.json") if (exp_dir / name).exists()]
    changed: list[str] = []
    if (exp_dir / "config.yaml").is_file():
        try:
            changed = _changes(read_yaml(exp_dir / "config.yaml"), config)
        except UserError:  # not readable as a config: not this run's
            changed = ["config.yaml (unreadable)"]
    if not made and not changed:
        return
    what = f"holds a run's {', '.join(made)}" if made else "holds the config.yaml of a run"
    if changed:
        what += f" with a different config ({', '.join(changed)} changed)"
    raise TrainingError(
        f"{exp_dir}: {what} and no checkpoint to resume from; use a new EXP_DIR, or add --replace to "
        f"train afresh there (removes its {', '.join(RUN_OUTPUTS)})"
    )


def clear_run(exp_dir: Path) -> list[str]:
    """Remove what a training run wrote into `exp_dir` (`RUN_OUTPUTS`); returns the names removed."""
    removed = []
    for name in RUN_OUTPUTS:
        path = exp_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


def initial_stats(config: TrainConfig, resumed: dict[str, Any] | None) -> NormStats:
    """The normalisation statistics: those the run started with when resuming, else data.stats."""
    if resumed is not None and "stats" in resumed:
        return NormStats.from_dict(resumed["stats"])
    path = config.data.stats
    if not path:
        raise TrainingError("data.stats is not set; give it in the config or with --set data.stats=PATH")
    stats = NormStats.load(path)
    if stats.features is not None and stats.features != config.features:
        changed = config_changes(to_dict(stats.features), to_dict(config.features), "features")
        raise TrainingError(
            f"{path}: computed with other feature settings than this config's ({', '.join(changed)}); "
            "run asr stats --config CONFIG again"
        )
    return stats


def check_resumed_vocabulary(exp_dir: Path, resumed: dict[str, Any] | None, vocab: Vocabulary) -> None:
    """Refuse to resume a run whose training transcripts now give another vocabulary than its
    checkpoints were trained with (those from before vocabularies were drawn: the english alphabet)."""
    if resumed is None:
        return
    tokens = tuple(resumed.get("tokens", Vocabulary.default().tokens))
    if tokens != vocab.tokens:
        raise TrainingError(
            f"{exp_dir}: the training transcripts now give another vocabulary ({len(vocab)} tokens) than the "
            f"run's checkpoints were trained with ({len(tokens)}); train in a new folder, or with the manifests "
            "the run started with"
        )


def initialise_from(model: torch.nn.Module, directory: str, vocab: Vocabulary, features: FeatureConfig) -> None:
    """Load into `model` the weights of the model directory `directory` (init_from), refused in one
    line when its vocabulary, features or shapes are not this run's."""
    try:
        loaded = load_model_dir(directory)
    except CheckpointError as error:
        raise TrainingError(f"init_from: {error}") from None
    if loaded.vocab != vocab:
        raise TrainingError(
            f"init_from: {directory}: its vocabulary ({len(loaded.vocab)} tokens, {loaded.vocab.text.normalizer} "
            f"normaliser) is not the one this run's transcripts give ({len(vocab)} tokens, {vocab.text.normalizer})"
        )
    if loaded.features != features:
        changed = config_changes(to_dict(loaded.features), to_dict(features), "features")
        raise TrainingError(f"init_from: {directory}: trained with other features ({', '.join(changed)})")
    try:
        model.load_state_dict(loaded.model.state_dict())
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0].rstrip(":")
        raise TrainingError(
            f"init_from: {directory}: its weights do not fit this config's model section ({first})"
        ) from None


def keep_if_best(
    folder: Path, validations: list[dict[str, float]], count: int, state: dict[str, Any], metric: str = "wer"
) -> None:
    """Keep `state` (the weights of the newest validation, with its "wer" and "cer") in `folder` if
    that validation ranks among the best `count` by dev `metric` (wer or cer, `TextConfig.metric`);
    remove those that no longer do."""
    ranked = sorted(validations, key=lambda v: (v[metric], -v["step"]))
    best_steps = {int(v["step"]) for v in ranked[:count]}
    step = int(validations[-1]["step"])
    if step in best_steps:
        save_training_state(state, folder, step, keep=10**9)
    for path in list_checkpoints(folder):
        if int(path.stem.split("-")[1]) not in best_steps:
            path.unlink()


def export_average(exp_dir: str | Path, config: TrainConfig, count: int, model_dir: str | Path) -> int:
    """Average the `count` best kept weights of `exp_dir` by dev error rate (`config.text.metric`)
    into a model directory.

    Returns how many were averaged. Falls back to the latest checkpoint if no
    validation kept any. The normalisation statistics and the longest training
    utterance come from the run's own checkpoints, not from files that may have
    changed since.
    """
    exp_dir = Path(exp_dir)
    kept = [load_training_state(p) for p in list_checkpoints(exp_dir / "best")]
    metric = config.text.metric
    kept.sort(key=lambda state: state[metric])
    kept = kept[:count]
    if not kept:
        latest = list_checkpoints(exp_dir / "checkpoints")
        if not latest:
            raise TrainingError(f"{exp_dir}: no checkpoint to export; has training run here?")
        kept = [load_training_state(latest[-1])]
    if "stats" not in kept[0]:
        raise TrainingError(f"{exp_dir}: its checkpoints predate the statistics they now hold; train it again")
    # runs from before vocabularies were drawn from transcripts kept no tokens: theirs is the english alphabet
    vocab = Vocabulary(tuple(kept[0].get("tokens", Vocabulary.default().tokens)), config.text)
    record = {
        "text": to_dict(config.text),
        "model": to_dict(dataclasses.replace(config.model, vocab_size=len(vocab))),
        "features": to_dict(config.features),
        "decoding": to_dict(config.decoding),
        "training": {"longest_utterance_seconds": round(kept[0]["longest_utterance_seconds"], 2)},
    }
    states = [renamed_old_directions(state["model"]) for state in kept]  # checkpoints of older versions too
    export_model_dir(model_dir, record, average_state_dicts(states), vocab, NormStats.from_dict(kept[0]["stats"]))
    log.info("exported %s (average of %d checkpoints)", model_dir, len(states))
    return len(states)
