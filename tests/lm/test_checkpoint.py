"""The LM directory (`asr.lm.checkpoint`): an unusable directory or another vocabulary is one line
naming the file."""

from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml

from asr.cli import main
from asr.errors import UserError
from asr.lm import CharLM, LMConfig, LMDirectoryError, export_lm_dir, load_lm
from asr.synthesis import corpus as _corpus  # noqa: F401  binds its default texts before a test adds a source
from asr.text import Vocabulary

VOCAB = Vocabulary.default()


TINY = LMConfig(embedding_dim=8, units=16, layers=2, dropout=0.1)


def tiny_lm(seed: int = 0) -> CharLM:
    torch.manual_seed(seed)
    return CharLM(TINY).eval()


def broken(directory: Path, what: str) -> None:
    if what == "missing weights":
        (directory / "model.safetensors").unlink()
    elif what == "acoustic config":
        (directory / "config.yaml").write_text(yaml.safe_dump({"format_version": 1, "model": {}}))
    elif what == "future version":
        record = yaml.safe_load((directory / "config.yaml").read_text())
        (directory / "config.yaml").write_text(yaml.safe_dump({**record, "format_version": 99}))
    elif what == "other sizes":
        record = yaml.safe_load((directory / "config.yaml").read_text())
        record["lm"]["units"] = 32
        (directory / "config.yaml").write_text(yaml.safe_dump(record))
    elif what == "damaged weights":
        (directory / "model.safetensors").write_bytes(b"not safetensors")
    elif what == "binary config":
        (directory / "config.yaml").write_bytes(b"\xff\xfe\x00")
    elif what == "NaN weights":
        weights = safetensors.torch.load_file(str(directory / "model.safetensors"))
        weights["output.bias"][0] = float("nan")
        safetensors.torch.save_file(weights, str(directory / "model.safetensors"))


@pytest.mark.parametrize(
    ("what", "file", "problem"),
    [
        ("missing weights", "", "missing model.safetensors"),
        ("acoustic config", "config.yaml", "it is an acoustic model directory"),
        ("future version", "config.yaml", "LM format version 99"),
        ("other sizes", "model.safetensors", "the weights do not fit config.yaml"),
        ("damaged weights", "model.safetensors", "not readable safetensors"),
        ("binary config", "config.yaml", "invalid UTF-8"),
        ("NaN weights", "model.safetensors", "hold NaN or infinity (first: output.bias)"),
    ],
)
def test_an_unusable_lm_directory_is_a_one_line_error_naming_the_file(tmp_path: Path, what, file, problem) -> None:
    directory = export_lm_dir(tmp_path / "lm", tiny_lm().config, tiny_lm().state_dict(), VOCAB)
    load_lm(directory)
    broken(directory, what)
    with pytest.raises(LMDirectoryError) as caught:
        load_lm(directory)
    message = str(caught.value)
    assert f"{directory / file}:" in message or (not file and f"{directory}:" in message)
    assert problem in message and "\n" not in message


def test_an_lm_over_another_vocabulary_is_refused(tmp_path: Path, capsys) -> None:
    directory = export_lm_dir(tmp_path / "lm", tiny_lm().config, tiny_lm().state_dict(), VOCAB)
    other = Vocabulary((*VOCAB.tokens[:-1], "<x>"))
    with pytest.raises(UserError, match="tokens.txt: the LM's tokens .* are not the acoustic model's"):
        load_lm(directory, vocab=other)
    assert main(["lm", "evaluate", "--model", str(tmp_path / "none"), "--text", str(tmp_path / "t.txt")]) == 1
    assert capsys.readouterr().err == f"asr: error: {tmp_path / 'none'}: no such LM directory\n"
