"""The language model's directory: `config.yaml` (format version, kind, LM config and the dev
figures of the weights), `model.safetensors` and `tokens.txt`, like the acoustic model's but
without normalisation statistics. It loads without pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from asr.checkpoint import (
    CONFIG_FILE,
    TOKENS_DIGEST,
    TOKENS_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    check_tokens,
    export_model_dir,
    load_weights,
)
from asr.config import ConfigError, from_dict, to_dict
from asr.errors import UserError
from asr.lm.model import CharLM, LMConfig
from asr.text import Vocabulary, VocabularyError

LM_FORMAT_VERSION = 1
"""Version of the LM directory layout; bumped when a change breaks old readers."""

LM_KIND = "character-lstm-lm"
"""`kind` in config.yaml: tells an LM directory from an acoustic model directory."""


class LMDirectoryError(UserError):
    """A language model directory that cannot be read; the message names the file."""


def export_lm_dir(
    directory: str | Path,
    config: LMConfig,
    state_dict: Mapping[str, torch.Tensor],
    vocab: Vocabulary,
    dev: Mapping[str, float] | None = None,
) -> Path:
    """Write an LM directory; it appears complete or not at all (an existing one is replaced).

    `dev` holds plain figures of these weights on the dev text (perplexity ...), recorded in config.yaml.
    """
    record: dict[str, Any] = {"format_version": LM_FORMAT_VERSION, "kind": LM_KIND, "lm": to_dict(config)}
    if dev:
        record["dev"] = {key: round(float(value), 6) for key, value in dev.items()}
    return export_model_dir(directory, record, state_dict, vocab, stats=None)


def _record(directory: Path) -> dict[str, Any]:
    """config.yaml of an LM directory, as a mapping."""
    path = directory / CONFIG_FILE
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise LMDirectoryError(f"{path}: not a text file (invalid UTF-8)") from None
    except OSError as error:
        raise LMDirectoryError(f"{path}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError:
        raise LMDirectoryError(f"{path}: invalid YAML") from None
    if not isinstance(record, dict):
        raise LMDirectoryError(f"{path}: expected a mapping of keys to values")
    return record


def _read_config(directory: Path) -> tuple[LMConfig, dict[str, Any]]:
    """The LM's config, and config.yaml's whole record."""
    path = directory / CONFIG_FILE
    record = _record(directory)
    if record.get("kind") != LM_KIND:
        hint = "; it is an acoustic model directory" if "model" in record else ""
        raise LMDirectoryError(f"{path}: not a language model (kind {record.get('kind')!r}, not {LM_KIND!r}){hint}")
    if record.get("format_version") != LM_FORMAT_VERSION:
        raise LMDirectoryError(
            f"{path}: LM format version {record.get('format_version')!r}; this toolkit reads {LM_FORMAT_VERSION}"
        )
    try:
        return from_dict(LMConfig, record.get("lm", {}), "lm"), record
    except ConfigError as error:
        raise LMDirectoryError(f"{path}: {error}") from None


def load_lm(directory: str | Path, device: torch.device | str = "cpu", vocab: Vocabulary | None = None) -> CharLM:
    """The LM of an LM directory (no pickle) on `device`, in eval mode.

    With `vocab` (the acoustic model's), its tokens must be the LM's, id for id. Raises
    `LMDirectoryError` (one line naming the file and the problem) or `VocabularyError`.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "is a file, not an LM directory" if directory.exists() else "no such LM directory"
        raise LMDirectoryError(f"{directory}: {what}")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE, TOKENS_FILE) if not (directory / name).is_file()]
    if missing:
        hint = f"; did you mean {directory / 'model'}?" if (directory / "model" / CONFIG_FILE).is_file() else ""
        raise LMDirectoryError(f"{directory}: not an LM directory (missing {', '.join(missing)}){hint}")
    config, record = _read_config(directory)
    tokens = Vocabulary.load(directory / TOKENS_FILE)
    try:
        check_tokens(directory, record.get(TOKENS_DIGEST))
    except CheckpointError as error:
        raise LMDirectoryError(str(error)) from None
    if len(tokens) != config.vocab_size:
        raise LMDirectoryError(f"{directory / TOKENS_FILE}: {len(tokens)} tokens, config.yaml says {config.vocab_size}")
    if vocab is not None and tokens != vocab:
        raise VocabularyError(
            f"{directory / TOKENS_FILE}: the LM's tokens ({len(tokens)}, english) are not the acoustic model's "
            f"({len(vocab)}, {vocab.text.normalizer} normaliser); asr lm train makes LMs of the english alphabet only"
        )
    try:
        weights = load_weights(directory / WEIGHTS_FILE)
    except CheckpointError as error:
        raise LMDirectoryError(str(error)) from None
    model = CharLM(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise LMDirectoryError(f"{directory / WEIGHTS_FILE}: the weights do not fit config.yaml ({first})") from None
    return model.to(torch.device(device)).eval()
