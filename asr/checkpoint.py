"""Training checkpoints, checkpoint averaging and self-contained model directories.

Training checkpoints (`EXP_DIR/checkpoints/step-*.pt`) are the toolkit's own files and
hold everything needed to continue: model, optimizer, scheduler, sampler position, RNG
states. They are read with `torch.load(weights_only=True)`, which refuses arbitrary
objects.

A model directory is what people share: `config.yaml` (format version, model,
features, decoding defaults), `model.safetensors`, `tokens.txt` and `cmvn.json`. It
loads without pickle, so a model from a stranger cannot run code.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
import yaml

from asr.atomic import atomic_open, atomic_write_text, default_mode
from asr.config import ConfigError, from_dict
from asr.errors import UserError
from asr.frontend.features import FeatureConfig
from asr.frontend.normalization import NormStats
from asr.frontend.pipeline import Frontend
from asr.model import LAS, LASConfig
from asr.text import TextConfig, Vocabulary

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the model directory layout; bumped when a change breaks old readers."""

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
TOKENS_FILE = "tokens.txt"
STATS_FILE = "cmvn.json"
MODEL_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE, TOKENS_FILE, STATS_FILE})
"""The files of a model directory (an LM directory has all but cmvn.json)."""

_STEP = re.compile(r"step-(\d+)\.pt")


class CheckpointError(UserError):
    """A checkpoint or model directory that cannot be read."""


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """Where the checkpoint of training step `step` lives."""
    return Path(directory) / f"step-{step:09d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Training checkpoints in `directory`, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def remove_stale_temporaries(directory: str | Path) -> int:
    """Remove the temporary files that a killed checkpoint write left in `directory`; returns how many."""
    directory = Path(directory)
    stale = list(directory.glob(".step-*.pt.*.tmp")) if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def save_training_state(state: Mapping[str, Any], directory: str | Path, step: int, keep: int) -> Path:
    """Write `state` as the checkpoint of `step` atomically, then keep only the newest `keep`."""
    path = checkpoint_path(directory, step)
    try:
        with atomic_open(path, "wb") as handle:
            torch.save(dict(state), handle)
    except RuntimeError as error:  # torch's writer reports a failed write as "[enforce fail ...] file write failed"
        if "write failed" not in str(error):
            raise
        problem = "no space left on device, or past a file size limit (ulimit -f)"
        raise OSError(errno.ENOSPC, problem, str(path)) from None
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_training_state` onto the CPU, refusing pickled objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as error:  # torch raises many kinds for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (in float64); other tensors from the last state.

    All states must have the same keys and shapes.
    """
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[-1].keys())
    for i, state in enumerate(states):
        if list(state.keys()) != keys:
            raise ValueError(f"state {i} has different parameters from the last one")
    averaged = {}
    for key in keys:
        last = states[-1][key]
        if last.is_floating_point():
            total = torch.stack([state[key].to(torch.float64) for state in states]).mean(dim=0)
            averaged[key] = total.to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged


def remove_stale_staging(directory: Path) -> list[Path]:
    """Remove the folders that exports into `directory` staged, or retired, and left behind when
    their process was killed (`.NAME.PID.*`, `.NAME.old.PID.*` beside it, PID no longer running);
    returns them. Those of a running export are left alone."""
    pattern = re.compile(rf"\.{re.escape(directory.name)}\.(?:old\.)?(\d+)\.\w+")
    removed = []
    for sibling in directory.parent.iterdir() if directory.parent.is_dir() else ():
        match = pattern.fullmatch(sibling.name)
        if match and sibling.is_dir() and not sibling.is_symlink() and not _running(int(match.group(1))):
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling)
    if removed:
        log.warning("removed %d folder(s) an interrupted export left beside %s", len(removed), directory)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid at all: not ours to judge
    return True


def export_model_dir(
    directory: str | Path,
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    vocab: Vocabulary,
    stats: NormStats | None,
) -> Path:
    """Write a model directory; it appears complete or not at all.

    `config` is a mapping of plain values (the model, features and decoding sections);
    `format_version` is added unless `config` has one. `stats` None (a language model,
    which reads no audio) writes no cmvn.json. An existing model directory is replaced, any
    other existing path refused (`check_replaceable`); weights holding NaN or infinity are refused.
    """
    directory = Path(directory)
    broken = non_finite(state_dict)
    if broken:
        raise CheckpointError(f"{directory}: not written: {broken}")
    check_replaceable(directory)
    if directory.is_symlink():  # EXP/model -> a folder elsewhere: the model goes there, the link stays
        directory = Path(os.path.realpath(directory))
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(directory)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.{os.getpid()}.", dir=directory.parent))
    try:
        vocab.save(staging / TOKENS_FILE)
        record = {"format_version": FORMAT_VERSION, **config, TOKENS_DIGEST: file_digest(staging / TOKENS_FILE)}
        atomic_write_text(staging / CONFIG_FILE, yaml.safe_dump(record, sort_keys=False))
        tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
        try:
            safetensors.torch.save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        except safetensors.SafetensorError as error:  # an I/O error as Rust's text: "... Os { code: 28, ..."
            code = re.search(r"code: (\d+)", str(error))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(directory / WEIGHTS_FILE)) from None
        if stats is not None:
            stats.save(staging / STATS_FILE)
        for path in staging.iterdir():  # safetensors writes 0600; a model is for others to load too
            os.chmod(path, default_mode())
        os.chmod(staging, default_mode(directory=True))
        if directory.exists():
            # an empty folder of a fresh name takes the old directory (a rename onto it replaces it)
            retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.{os.getpid()}.", dir=directory.parent))
            directory.rename(retired)
            staging.rename(directory)
            shutil.rmtree(retired)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def check_replaceable(directory: str | Path) -> None:
    """Raise `CheckpointError` unless `directory` may be replaced whole by an export: it is missing,
    empty, or a model directory (config.yaml and model.safetensors) holding nothing but a model's files.

    Anything else in it (notes.txt, photos/) would be lost; a file is no model directory.
    """
    directory = Path(directory)
    if not os.path.lexists(directory):
        return
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: is a file, not a model directory; give a folder to write the model into")
    names = sorted(path.name for path in directory.iterdir())
    others = [name for name in names if name not in MODEL_FILES]
    if others or (names and not {CONFIG_FILE, WEIGHTS_FILE} <= set(names)):
        held = f"holds {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}" if others else "holds no model"
        raise CheckpointError(
            f"{directory}: not a model directory ({held}), and writing a model replaces the folder whole; "
            "give a new or empty folder"
        )


def read_model_dir(directory: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Vocabulary, NormStats]:
    """Read a model directory without pickle: (config mapping, weights, vocabulary, statistics).

    Errors name the directory and what is wrong with it.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "is a file, not a model directory" if directory.exists() else "no such model directory"
        raise CheckpointError(f"{directory}: {what}")
    missing = [
        name for name in (CONFIG_FILE, WEIGHTS_FILE, TOKENS_FILE, STATS_FILE) if not (directory / name).is_file()
    ]
    if missing:
        raise CheckpointError(f"{directory}: not a model directory (missing {', '.join(missing)})")
    try:
        config = yaml.safe_load((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{directory / CONFIG_FILE}: not a text file (invalid UTF-8)") from None
    except yaml.YAMLError:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid YAML") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{directory / CONFIG_FILE}: expected a mapping of keys to values")
    version = config.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: model format version {version!r}; this toolkit reads version {FORMAT_VERSION}"
        )
    digest = config.pop(TOKENS_DIGEST, None)
    weights = load_weights(directory / WEIGHTS_FILE)
    try:  # the normaliser the model was trained with; a directory written before it was saved: english
        text = from_dict(TextConfig, config.get("text") or {}, "text")
    except ConfigError as error:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {error}") from None
    vocab = Vocabulary.load(directory / TOKENS_FILE, text)  # a file that is no vocabulary is named as such first
    check_tokens(directory, digest)
    return config, weights, vocab, NormStats.load(directory / STATS_FILE)


TOKENS_DIGEST = "tokens_sha256"
"""The config.yaml key that records tokens.txt's SHA-256: the ids the weights were trained on."""


def file_digest(path: Path) -> str:
    """The SHA-256 of `path`'s bytes, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_tokens(directory: Path, digest: object) -> None:
    """Refuse a tokens.txt that is not the one the directory was exported with (two letters swapped
    load fine and spell wrong); a directory from before the digest was recorded (None) passes."""
    if digest is not None and digest != file_digest(directory / TOKENS_FILE):
        raise CheckpointError(
            f"{directory / TOKENS_FILE}: not the vocabulary this model was exported with ({CONFIG_FILE}'s "
            f"{TOKENS_DIGEST} differs): its ids would spell other characters; restore the exported tokens.txt"
        )


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no pickle); `CheckpointError` naming it if it cannot be read
    or holds NaN or infinity."""
    try:
        weights = safetensors.torch.load_file(str(path))
    except (safetensors.SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not readable safetensors ({error})") from None
    broken = non_finite(weights)
    if broken:
        raise CheckpointError(f"{path}: {broken}")
    return weights


def non_finite(weights: Mapping[str, torch.Tensor]) -> str | None:
    """What is wrong with `weights` if a floating-point tensor holds NaN or infinity, else None."""
    bad = [name for name, tensor in weights.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if not bad:
        return None
    return f"{len(bad)} weight tensors hold NaN or infinity (first: {bad[0]}); training diverged"


@dataclass(frozen=True)
class LoadedModel:
    """A model directory ready to decode: the model and front end in eval mode on one device,
    the vocabulary, and the decoding defaults as plain values."""

    model: LAS
    frontend: Frontend
    vocab: Vocabulary
    features: FeatureConfig
    decoding: dict[str, Any]
    device: torch.device
    longest_utterance_seconds: float | None = None
    """The longest utterance in training, if the model directory records it."""


def load_model_dir(directory: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Build the model of a model directory (no pickle) on `device`, in eval mode."""
    config, weights, vocab, stats = read_model_dir(directory)
    try:
        model_config = from_dict(LASConfig, config.get("model", {}), "model")
        features = from_dict(FeatureConfig, config.get("features", {}), "features")
    except ConfigError as error:
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE}: {error}") from None
    if model_config.vocab_size != len(vocab):
        raise CheckpointError(f"{directory}: the model has {model_config.vocab_size} outputs, tokens.txt {len(vocab)}")
    model = LAS(model_config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{directory}: the weights do not fit the model in config.yaml ({first})") from None
    try:
        frontend = Frontend(features, stats)
    except ValueError as error:
        raise CheckpointError(f"{Path(directory) / STATS_FILE}: {error}") from None
    device = torch.device(device)
    decoding = config.get("decoding", {})
    training = config.get("training") or {}
    longest = training.get("longest_utterance_seconds") if isinstance(training, dict) else None
    if longest is not None and not (isinstance(longest, int | float) and 0 < longest < math.inf):
        raise CheckpointError(
            f"{Path(directory) / CONFIG_FILE}: training.longest_utterance_seconds must be a positive number of "
            f"seconds, found {longest!r}"
        )
    return LoadedModel(
        model.to(device).eval(),
        frontend.to(device).eval(),
        vocab,
        features,
        decoding,
        device,
        float(longest) if isinstance(longest, int | float) else None,
    )
