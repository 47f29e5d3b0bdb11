"""Training an LM (`asr.lm.training`, `asr.lm.evaluation`): checkpoints and a directory that
evaluates, resume equals uninterrupted."""

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from asr.atomic import exclusive_folder
from asr.checkpoint import list_checkpoints, load_training_state
from asr.cli import main
from asr.lm import load_lm
from asr.lm.corpus import read_text
from asr.lm.evaluation import evaluate_lm
from asr.synthesis import corpus as _corpus  # noqa: F401  binds its default texts before a test adds a source
from asr.text import Vocabulary

VOCAB = Vocabulary.default()


WORDS = [
    "THE",
    "A",
    "CAT",
    "DOG",
    "SAT",
    "RAN",
    "ON",
    "UNDER",
    "MAT",
    "TREE",
    "AND",
    "IT",
    "WAS",
    "GOOD",
    "DON'T",
    "LORD",
]


def write_sentences(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))).lower() + "." for _ in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def lm_experiment(tmp_path: Path) -> Path:
    write_sentences(tmp_path / "train.txt", 200, seed=1)
    write_sentences(tmp_path / "dev.txt", 20, seed=2)
    config = {
        "data": {"max_tokens": 300, "max_chars": 100},
        "model": {"embedding_dim": 8, "units": 24, "layers": 2, "dropout": 0.2},
        "optim": {"schedule": {"lr": 0.01, "warmup_steps": 5, "decay": "cosine"}},
        "epochs": 2,
        "checkpoint_every": 5,
        "log_every": 2,
    }
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def train_args(experiment: Path, exp: Path, *extra: str) -> list[str]:
    return ["lm", "train", "--config", str(experiment / "lm.yaml"), "--text", str(experiment / "train.txt"),
            "--dev-text", str(experiment / "dev.txt"), "--out", str(exp), "--device", "cpu", *extra]  # fmt: skip


def test_training_writes_checkpoints_and_an_lm_directory_that_evaluates(lm_experiment: Path, capsys) -> None:
    exp = lm_experiment / "exp"
    assert main(train_args(lm_experiment, exp)) == 0
    assert "200 sentences" in capsys.readouterr().out
    assert list_checkpoints(exp / "checkpoints") and list((exp / "tensorboard").iterdir())
    validations = yaml.safe_load((exp / "validations.json").read_text())
    assert len(validations) == 2 and validations[-1]["perplexity"] < len(VOCAB)  # it learnt something
    record = yaml.safe_load((exp / "model" / "config.yaml").read_text())
    assert record["format_version"] == 1 and record["lm"]["units"] == 24
    assert sorted(p.name for p in (exp / "model").iterdir()) == ["config.yaml", "model.safetensors", "tokens.txt"]
    lm = load_lm(exp / "model", vocab=VOCAB)
    score = evaluate_lm(lm, read_text([lm_experiment / "dev.txt"])[0])
    best = min(v["perplexity"] for v in validations)  # the exported weights are the best ones
    assert math.isclose(score.perplexity, best, rel_tol=1e-6)
    assert math.isclose(record["dev"]["perplexity"], best, rel_tol=1e-6)
    assert math.isclose(2**score.bits_per_character, score.perplexity)
    assert main(["lm", "evaluate", "--model", str(exp / "model"), "--text", str(lm_experiment / "dev.txt")]) == 0
    assert f"perplexity {score.perplexity:.4f}" in capsys.readouterr().out


def test_resuming_with_a_different_config_is_refused(lm_experiment: Path, capsys) -> None:
    exp = lm_experiment / "exp"
    assert main(train_args(lm_experiment, exp, "--set", "epochs=1")) == 0
    assert main(train_args(lm_experiment, exp, "--set", "seed=5")) == 1
    assert "holds a run with a different config" in capsys.readouterr().err


def test_a_second_lm_training_into_the_same_folder_is_refused_naming_the_holder(lm_experiment: Path, capsys) -> None:
    exp = lm_experiment / "exp"
    with exclusive_folder(exp, "asr lm train"):
        assert main(train_args(lm_experiment, exp)) == 1
    assert capsys.readouterr().err == (
        f"asr: error: {exp}: another asr lm train (pid {os.getpid()}) is writing into this folder; "
        "wait for it to finish or use another folder\n"
    )
    assert not (exp / "checkpoints").exists() and not (exp / "text").exists()


def long_run(experiment: Path, exp: Path) -> list[str]:
    return train_args(experiment, exp, "--set", "epochs=100", "--set", "max_steps=80")


def final_state(exp: Path) -> dict:
    return load_training_state(list_checkpoints(exp / "checkpoints")[-1])


def test_a_killed_run_resumes_to_the_same_weights_bit_for_bit(lm_experiment: Path) -> None:
    assert main(long_run(lm_experiment, lm_experiment / "whole")) == 0
    command = [sys.executable, "-m", "asr", *long_run(lm_experiment, lm_experiment / "killed")]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list_checkpoints(lm_experiment / "killed" / "checkpoints") and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (lm_experiment / "killed" / "model").exists(), "training finished before it could be killed"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = final_state(lm_experiment / "whole"), final_state(lm_experiment / "killed")
    assert got["progress"]["step"] == expected["progress"]["step"] == 80
    for key, value in expected["model"].items():
        assert torch.equal(got["model"][key], value), key
