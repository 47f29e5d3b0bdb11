import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from asr.atomic import exclusive_folder
from asr.checkpoint import list_checkpoints, load_model_dir, load_training_state, save_training_state
from asr.cli import main
from asr.config import load_config
from asr.data.dataset import Batch, manifest_stats
from asr.data.manifest import read_manifest
from asr.data.prepare import prepare_librispeech
from asr.frontend.features import FeatureConfig
from asr.model import LAS
from asr.training.config import TrainConfig
from asr.training.data import shares
from asr.training.distributed import World
from asr.training.loop import Trainer, TrainingError, compile_model, loss_weights
from asr.training.steps import Budget
from tests.test_model import random_batch, tiny

TINY_MODEL = {
    "listener": {"layers": 2, "units": 32, "reduce": [1], "dropout": 0.1},
    "attention": {"kind": "location", "dim": 32},
    "speller": {"units": 32, "embedding_dim": 16, "dropout": 0.1},
}


@pytest.fixture()
def experiment(corpus: Path, tmp_path: Path) -> Path:
    """Manifests, statistics and a tiny config for the fixture corpus, in tmp_path."""
    prepare_librispeech(corpus, ["dev-clean", "test-clean"], tmp_path)
    manifest_stats(read_manifest(tmp_path / "dev-clean.jsonl"), FeatureConfig(), jobs=0).save(tmp_path / "cmvn.json")
    config = {
        "data": {
            "train": str(tmp_path / "dev-clean.jsonl"),
            "dev": str(tmp_path / "test-clean.jsonl"),
            "stats": str(tmp_path / "cmvn.json"),
            "max_frames": 500,
            "num_workers": 0,
        },
        "model": TINY_MODEL,
        "optim": {"schedule": {"lr": 0.002, "warmup_steps": 2}},
        "decoding": {"beam": 2},
        "epochs": 2,
        "checkpoint_every": 2,
        "log_every": 1,
        "average_best": 2,
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_train_writes_config_checkpoints_plots_and_a_loadable_model(experiment: Path, capsys) -> None:
    exp = experiment / "exp"
    assert main(["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp), "--set", "epochs=1"]) == 0
    assert load_config(TrainConfig, exp / "config.yaml").epochs == 1  # the resolved config, override included
    assert list_checkpoints(exp / "checkpoints") and (exp / "validations.json").is_file()
    assert list((exp / "plots").glob("*.png")) and list((exp / "tensorboard").iterdir())
    loaded = load_model_dir(exp / "model")
    assert loaded.decoding["beam"] == 2 and len(loaded.vocab) == loaded.model.config.vocab_size
    out = experiment / "eval"
    assert main(["evaluate", "--model", str(exp / "model"), "--manifest", str(experiment / "test-clean.jsonl"),
                 "--out", str(out), "--beam", "1", "--jobs", "0"]) == 0  # fmt: skip
    summary = yaml.safe_load((out / "summary.json").read_text())
    assert summary["utterances"] == 2 and summary["words"] == 8 and summary["rtf"] > 0
    assert len((out / "hyps.jsonl").read_text().splitlines()) == 2


def test_only_the_first_process_prints_the_model_directory(experiment: Path, capsys, monkeypatch) -> None:
    """Every torchrun process returns from training; one line of output names the model directory."""
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--set", "max_steps=1", "--set", "epochs=1"]
    assert main([*args, "--out", str(experiment / "first")]) == 0
    assert capsys.readouterr().out.count("model directory") == 1
    monkeypatch.setenv("RANK", "1")  # what torchrun sets in the second process (a world of one here)
    assert main([*args, "--out", str(experiment / "second")]) == 0
    assert "model directory" not in capsys.readouterr().out


def run_train(config: Path, exp: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "asr", "train", "--config", str(config), "--out", str(exp), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def final_weights(exp: Path) -> dict[str, torch.Tensor]:
    return load_training_state(list_checkpoints(exp / "checkpoints")[-1])["model"]


def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(experiment: Path) -> None:
    config = yaml.safe_load((experiment / "tiny.yaml").read_text())
    config.update(epochs=100, max_steps=16, checkpoint_every=2, plot_utterances=0)
    config["data"]["speed_perturb"] = True
    (experiment / "long.yaml").write_text(yaml.safe_dump(config))
    whole = run_train(experiment / "long.yaml", experiment / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()

    killed = run_train(experiment / "long.yaml", experiment / "killed")
    deadline = time.monotonic() + 120
    while not list_checkpoints(experiment / "killed" / "checkpoints") and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (experiment / "killed" / "model").exists(), "training finished before it could be killed"
    resumed = run_train(experiment / "long.yaml", experiment / "killed")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    expected, got = final_weights(experiment / "whole"), final_weights(experiment / "killed")
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)


def test_resuming_with_a_different_config_is_refused(experiment: Path, capsys) -> None:
    exp = experiment / "exp"
    assert main(["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp), "--set", "epochs=1"]) == 0
    assert main(["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp), "--set", "seed=5"]) == 1
    assert "holds a run with a different config" in capsys.readouterr().err


def test_a_finished_run_without_checkpoints_is_not_overwritten_unless_replace_is_given(
    experiment: Path, capsys
) -> None:
    exp = experiment / "exp"
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp), "--set", "epochs=1"]
    assert main(args) == 0
    shutil.rmtree(exp / "checkpoints")
    made = {path: path.read_bytes() for path in exp.rglob("*") if path.is_file() and path.name != ".lock"}
    capsys.readouterr()
    for extra in ([], ["--set", "seed=7", "--set", "model.speller.units=16"]):
        assert main([*args, *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"asr: error: {exp}: holds a run's model, best, validations.json"), err
        assert err.count("\n") == 1
        assert ("different config" in err and "seed" in err and "model.speller.units" in err) == bool(extra)
        assert "--replace" in err
        assert {path: path.read_bytes() for path in made} == made and not (exp / "checkpoints").exists()
    assert main([*args, "--set", "seed=7", "--replace"]) == 0
    assert load_config(TrainConfig, exp / "config.yaml").seed == 7 and list_checkpoints(exp / "checkpoints")
    weights = exp / "model" / "model.safetensors"
    assert weights.read_bytes() != made[weights]  # the new run's model, not the old one's


def test_a_non_finite_step_is_skipped_and_not_applied(experiment: Path) -> None:
    config = load_config(TrainConfig, experiment / "tiny.yaml")
    trainer = Trainer(config, experiment / "exp", device="cpu")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    waveforms = torch.randn(2, 16000)
    waveforms[0, 100] = float("nan")
    batch = Batch(
        ("a", "b"), waveforms, torch.tensor([16000, 12000]), torch.tensor([[5, 6], [7, 1]]), torch.tensor([2, 1])
    )
    assert trainer._train_step([batch]) is None
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before[key])


def test_a_missing_audio_file_stops_training_before_it_starts(experiment: Path, capsys) -> None:
    manifest = experiment / "dev-clean.jsonl"
    lines = manifest.read_text().splitlines()
    lines[2] = lines[2].replace("1002-2002-0000.flac", "gone.flac")
    manifest.write_text("\n".join(lines) + "\n")
    assert main(["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "x")]) == 1
    err = capsys.readouterr().err
    assert "utterance 1002-2002-0000:" in err and "gone.flac: no such file" in err and err.count("\n") == 1
    assert not (experiment / "x" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("data.filters.max_duration=0.1", "no utterance is left after the filters"),
        ("data.train=''", "data.train is not set"),
        ("data.max_frames=50", "data.max_frames"),
        ("optim.schedule.lr=-1", "need an lr above 0"),
        ("model.attention.kind=cosine", "model.attention.kind: expected one of"),
        ("optim.schedule.lr=.inf", "need an lr above 0 and at most 1"),
        ("optim.grad_clip=-1", "grad_clip must be a finite number > 0"),
        ("optim.betas=[0.9,1.5]", "betas must lie in [0, 1)"),
        ("optim.weight_decay=-0.1", "weight_decay must be a finite number >= 0"),
        ("data.num_workers=-1", "num_workers and sorted_epochs must not be negative"),
        ("data.max_batch_size=0", "max_frames and max_batch_size must be at least 1"),
        ("features.n_mels=40", "computed with other feature settings than this config's (features.n_mels)"),
        ("sampling_prob=5", "sampling_prob must lie in [0, 1] (a probability), got 5.0"),
        ("sampling_prob=-1", "sampling_prob must lie in [0, 1] (a probability), got -1.0"),
        ("validate_every=-3", "validate_every must be at least 1 or null, got -3"),
        ("plot_utterances=-1", "plot_utterances must not be negative, got -1"),
        ("sampling_ramp=-1", "sampling_ramp must be at least 1, got -1"),
        ("max_steps=-5", "max_steps must be at least 1 or null, got -5"),
    ],
)
def test_bad_training_input_is_one_line_before_training_starts(experiment: Path, capsys, override, problem) -> None:
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "x"), "--set", override]
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert problem in err[-1] and err[-1].startswith("asr: error: ")
    assert len(err) == 1 or (len(err) == 2 and err[0].startswith("dropped 4 of 4 utterances"))  # the reason first


def test_decoding_settings_the_model_cannot_use_are_one_line_before_training_starts(experiment: Path, capsys) -> None:
    config = ["--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "x")]
    no_ctc = ["--set", "model.ctc_weight=0", "--set", "decoding.max_ctc_length_ratio=1.3"]
    assert main(["train", *config, *no_ctc]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["asr: error: decoding: max_ctc_length_ratio is 1.3, but this model has no CTC head; use 0"]
    assert not (experiment / "x" / "checkpoints").exists()


def test_bf16_on_a_cpu_without_bf16_kernels_is_one_line_before_training_starts(
    experiment: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oneDNN cannot create a bf16 LSTM on a CPU without AVX-512 BF16 or AMX: a traceback at the first step before."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "x"), "--device", "cpu"]
    assert main([*args, "--set", "precision=bf16"]) == 1
    err = capsys.readouterr().err.splitlines()
    problem = "precision: bf16 needs a GPU or a CPU with bf16 instructions (AVX-512 BF16, AMX); use fp32"
    assert err == [f"asr: error: {problem}"]
    assert not (experiment / "x" / "checkpoints").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def faulty_frontend(trainer: Trainer, fault: str) -> None:
    """Rank 1's front end at step 1: features of NaN ("nan"), or out of GPU memory ("oom")."""
    forward = trainer.frontend.forward

    def at_step_1(*args):
        features, lengths = forward(*args)
        if trainer.progress.step == 1 and fault == "nan":
            return features * float("nan"), lengths
        if trainer.progress.step == 1 and fault == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory (a test's stand-in)")
        return features, lengths

    trainer.frontend.forward = at_step_1


def distributed_worker(
    rank: int, world: int, port: int, config_path: str, exp: str, overrides: list[str], fault: str | None = None
) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    config = load_config(TrainConfig, config_path, overrides)
    trainer = Trainer(config, Path(exp), device="cpu")
    if fault is not None and rank == 1:
        faulty_frontend(trainer, fault)
    trainer._loop()
    state = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.schedule.state_dict(),
        "validations": trainer.progress.validations,
        "skipped_steps": trainer.progress.skipped_steps,
    }
    torch.save(state, Path(exp) / f"rank{rank}.pt")


def spawn_two(experiment: Path, exp: Path, overrides: list[str], fault: str | None = None) -> tuple[dict, dict]:
    exp.mkdir()
    torch.multiprocessing.spawn(
        distributed_worker, args=(2, free_port(), str(experiment / "tiny.yaml"), str(exp), overrides, fault), nprocs=2
    )
    first, second = (torch.load(exp / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    return first, second


def test_a_rank_whose_loss_goes_non_finite_makes_every_rank_skip_that_step_and_go_on(experiment: Path) -> None:
    first, second = spawn_two(
        experiment, experiment / "ddp", ["max_steps=3", "epochs=5", "data.max_frames=300"], fault="nan"
    )
    assert first["skipped_steps"] == second["skipped_steps"] == 1
    for key in first["model"]:
        assert torch.equal(first["model"][key], second["model"][key]) and first["model"][key].isfinite().all()


def test_a_rank_out_of_memory_stops_every_rank_with_one_line_instead_of_leaving_them_waiting(
    experiment: Path,
) -> None:
    started = time.monotonic()
    with pytest.raises(torch.multiprocessing.ProcessRaisedException) as raised:
        spawn_two(experiment, experiment / "ddp", ["max_steps=3", "epochs=5", "data.max_frames=300"], fault="oom")
    assert "rank 1: out of GPU memory at step 1 on a batch of" in str(raised.value)
    assert "lower data.max_frames" in str(raised.value)
    assert time.monotonic() - started < 120  # the launcher stopped rank 0; it did not wait out the timeout
    assert not (experiment / "ddp" / "rank0.pt").exists()


def test_two_processes_keep_identical_weights(experiment: Path) -> None:
    first, second = spawn_two(experiment, experiment / "ddp", ["max_steps=2", "epochs=1"])
    initial = Trainer(
        load_config(TrainConfig, experiment / "tiny.yaml"), experiment / "other", device="cpu"
    ).model.state_dict()
    for key in first["model"]:
        assert torch.equal(first["model"][key], second["model"][key])
    assert any(not torch.equal(first["model"][key], initial[key]) for key in first["model"])  # they did train


def test_a_plateau_seen_by_validation_lowers_the_rate_on_every_process(experiment: Path) -> None:
    # a tiny learning rate keeps the dev WER where it is, so each validation after the first is a plateau
    overrides = ["max_steps=4", "epochs=10", "validate_every=1", "plot_utterances=0", "optim.schedule.lr=1.0e-7"]
    overrides += ["optim.schedule.warmup_steps=0", "optim.schedule.decay=plateau", "optim.schedule.plateau_patience=1"]
    first, second = spawn_two(experiment, experiment / "ddp", overrides)
    assert first["schedule"]["plateau_scale"] < 1  # the plateau rule did fire
    assert first["schedule"] == second["schedule"] and first["validations"] == second["validations"]
    assert [group["lr"] for group in first["optimizer"]["param_groups"]] == [
        group["lr"] for group in second["optimizer"]["param_groups"]
    ]
    for key in first["model"]:
        assert torch.equal(first["model"][key], second["model"][key])
    for (index, a), b in zip(first["optimizer"]["state"].items(), second["optimizer"]["state"].values(), strict=True):
        for name in a:
            assert torch.equal(a[name], b[name]), (index, name)


def test_a_second_training_into_the_same_folder_is_refused_naming_the_holder(experiment: Path, capsys) -> None:
    exp = experiment / "exp"
    with exclusive_folder(exp, "asr train"):
        assert main(["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"asr: error: {exp}: another asr train (pid {os.getpid()}) is writing into this folder; "
        "wait for it to finish or use another folder\n"
    )
    assert not (exp / "checkpoints").exists()


def cut_flac(path: Path) -> None:
    """Cut a FLAC file short, keeping its header: the header read passes, decoding fails."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def test_audio_that_fails_to_decode_in_training_is_skipped_then_too_much_stops(
    experiment: Path, caplog, capsys
) -> None:
    broken = next(iter(read_manifest(experiment / "dev-clean.jsonl"))).audio
    cut_flac(broken)
    overrides = ["epochs=1", "plot_utterances=0", "data.max_bad_audio_fraction=0.5"]
    Trainer(load_config(TrainConfig, experiment / "tiny.yaml", overrides), experiment / "a", device="cpu")._loop()
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped utterance")]
    assert len(skipped) == 1 and f"{broken}: corrupt audio data" in skipped[0]
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "b"), "--set", "epochs=1"]
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(
        "asr: error: 1 utterances of epoch 1 could not be decoded (the last: utterance 1001-2001-0000"
    )
    assert "more than data.max_bad_audio_fraction=0.01; asr prepare ... --verify finds" in err


def test_evaluation_checks_its_input_before_decoding(experiment: Path, capsys) -> None:
    exp = experiment / "exp"
    assert main(["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp), "--set", "epochs=1"]) == 0
    manifest = experiment / "test-clean.jsonl"
    evaluate = ["evaluate", "--model", str(exp / "model"), "--out", str(experiment / "eval"), "--jobs", "0"]
    lines = manifest.read_text().splitlines()
    (experiment / "gone.jsonl").write_text(lines[0].replace("1003-2003-0000.flac", "gone.flac") + "\n" + lines[1])
    assert main([*evaluate, "--manifest", str(experiment / "gone.jsonl")]) == 1
    assert "utterance 1003-2003-0000:" in capsys.readouterr().err
    silent = [json.dumps(json.loads(line) | {"text": "42 !"}) for line in lines]
    (experiment / "silent.jsonl").write_text("\n".join(silent) + "\n")
    assert main([*evaluate, "--manifest", str(experiment / "silent.jsonl")]) == 1
    assert capsys.readouterr().err.endswith("no reference holds a word once normalised, so WER is undefined\n")
    cut_flac(read_manifest(manifest)[1].audio)
    assert main([*evaluate, "--manifest", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "utterance 1003-2003-0001:" in err and "corrupt audio data" in err
    assert not (experiment / "eval" / "summary.json").exists()


def test_a_damaged_newest_checkpoint_resumes_from_the_one_before(experiment: Path, caplog) -> None:
    config = load_config(TrainConfig, experiment / "tiny.yaml", ["max_steps=2", "checkpoint_every=1"])
    Trainer(config, experiment / "exp", device="cpu")._loop()
    newest = list_checkpoints(experiment / "exp" / "checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    (newest.parent / ".step-000000003.pt.x1y2.tmp").write_bytes(b"partial")
    trainer = Trainer(config, experiment / "exp", device="cpu")
    assert trainer.progress.step == 1
    assert not list(newest.parent.glob("*.tmp"))
    assert any(f"{newest.name}: not a readable checkpoint" in r.getMessage() for r in caplog.records)


def test_a_checkpoint_that_is_not_a_training_state_is_one_line(experiment: Path, capsys) -> None:
    save_training_state({"model": {}}, experiment / "exp" / "checkpoints", 1, keep=1)
    assert main(["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "exp")]) == 1
    err = capsys.readouterr().err
    assert "step-000000001.pt: not a training checkpoint of asr train (no config, longest_utterance_seconds" in err


def test_a_device_that_is_not_cpu_or_cuda_is_refused(experiment: Path, capsys) -> None:
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "x"), "--device", "meta"]
    assert main(args) == 1
    assert capsys.readouterr().err == "asr: error: unknown device 'meta'; use auto, cpu, cuda or cuda:N\n"


def test_an_epoch_in_which_every_step_was_skipped_stops_training(experiment: Path, monkeypatch) -> None:
    trainer = Trainer(load_config(TrainConfig, experiment / "tiny.yaml"), experiment / "x", device="cpu")
    monkeypatch.setattr(trainer, "_train_step", lambda batches: None)
    with pytest.raises(TrainingError, match="every step of epoch 1 was skipped"):
        trainer._loop()


def test_dev_references_without_a_character_are_refused_before_training(experiment: Path, capsys) -> None:
    dev = experiment / "test-clean.jsonl"
    dev.write_text(
        "".join(json.dumps(json.loads(line) | {"text": "42"}) + "\n" for line in dev.read_text().splitlines())
    )
    assert main(["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "x")]) == 1
    assert capsys.readouterr().err == (
        f"asr: error: {dev}: no dev utterance has a transcript with a character to score\n"
    )


def test_a_full_disk_stops_training_in_one_line_and_keeps_the_last_checkpoint(
    experiment: Path, capsys, monkeypatch
) -> None:
    from asr.training import loop

    exp = experiment / "exp"
    real = loop.save_training_state
    calls = []

    def full_on_the_second(state, directory, step, keep):
        calls.append(step)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(directory) / "x.tmp"))
        return real(state, directory, step, keep)

    monkeypatch.setattr(loop, "save_training_state", full_on_the_second)
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp), "--set", "checkpoint_every=1"]
    assert main([*args, "--set", "plot_utterances=0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.tmp: no space left on device; the last complete checkpoint is intact" in err
    assert [p.name for p in list_checkpoints(exp / "checkpoints")] == [f"step-{calls[0]:09d}.pt"]


@pytest.mark.parametrize(
    "args",
    [
        ["transcribe", "--model", "m", "f.wav", "--max-seconds", "nan"],
        ["evaluate", "--model", "m", "--manifest", "x.jsonl", "--out", "o", "--jobs", "-1"],
    ],  # fmt: skip
)
def test_impossible_numbers_on_the_command_line_are_usage_errors(args, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("asr ")


def test_several_training_manifests_are_batched_together_with_their_repeats(experiment: Path) -> None:
    sources = (
        f"data.train=[{{manifest: {experiment / 'dev-clean.jsonl'}, repeat: 2}}, "
        f"{{manifest: {experiment / 'test-clean.jsonl'}}}]"
    )
    trainer = Trainer(load_config(TrainConfig, experiment / "tiny.yaml", [sources]), experiment / "x", device="cpu")
    ids = sorted(u.id for u in trainer.dataset.utterances)
    assert len(ids) == 2 * 4 + 2 and ids.count("1001-2001-0000") == 2 and ids.count("1003-2003-0000") == 1
    assert sorted(i for batch in trainer.sampler.batches(0) for i in batch) == list(range(10))


def test_a_resumed_run_over_several_manifests_equals_an_uninterrupted_one(experiment: Path) -> None:
    sources = (
        f"data.train=[{{manifest: {experiment / 'dev-clean.jsonl'}, repeat: 2}}, "
        f"{{manifest: {experiment / 'test-clean.jsonl'}}}]"
    )
    base = [sources, "epochs=3", "checkpoint_every=1", "plot_utterances=0", "data.speed_perturb=true"]
    # a constant rate: the run stopped at max_steps=3 validated there, which a plateau rule would act on
    base += ["data.augment={noise_prob: 0.5, gain_prob: 0.5}", "vtlp={max_warp: 0.1}", "optim.schedule.decay=constant"]
    whole = Trainer(load_config(TrainConfig, experiment / "tiny.yaml", [*base, "max_steps=6"]), experiment / "a")
    whole._loop()
    Trainer(load_config(TrainConfig, experiment / "tiny.yaml", [*base, "max_steps=3"]), experiment / "b")._loop()
    resumed = Trainer(load_config(TrainConfig, experiment / "tiny.yaml", [*base, "max_steps=6"]), experiment / "b")
    assert resumed.progress.step == 3
    resumed._loop()
    for key, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)


@pytest.fixture()
def trained_model(experiment: Path) -> Path:
    """The exported model of one epoch of the tiny config."""
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "pre"), "--set", "epochs=1"]
    assert main([*args, "--set", "plot_utterances=0"]) == 0
    return experiment / "pre" / "model"


def test_init_from_starts_from_the_weights_of_a_model_directory(experiment: Path, trained_model: Path) -> None:
    overrides = [f"init_from={trained_model}", "seed=7"]
    trainer = Trainer(load_config(TrainConfig, experiment / "tiny.yaml", overrides), experiment / "ft", device="cpu")
    fresh = Trainer(load_config(TrainConfig, experiment / "tiny.yaml", ["seed=7"]), experiment / "x", device="cpu")
    loaded = load_model_dir(trained_model).model.state_dict()
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, loaded[key])
    assert not torch.equal(fresh.model.state_dict()["speller.output.weight"], loaded["speller.output.weight"])


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (["init_from={missing}"], "init_from: {missing}: no such model directory"),
        (["model.listener.units=16"], "its weights do not fit this config's model section"),
        (["features.f_max=7000.0", "data.stats={stats}"], "trained with other features (features.f_max)"),
    ],
)
def test_an_init_from_model_that_does_not_fit_is_one_line(
    experiment: Path, trained_model: Path, capsys, overrides: list[str], problem: str
) -> None:
    paths = {"missing": experiment / "nowhere", "stats": experiment / "cmvn_7k.json"}
    train = read_manifest(experiment / "dev-clean.jsonl")
    manifest_stats(train, FeatureConfig(f_max=7000.0), jobs=0).save(paths["stats"])
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "ft")]
    for override in [f"init_from={trained_model}", *overrides]:
        args += ["--set", override.format(**paths)]
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and problem.format(**paths) in err[0], err


def test_compiling_keeps_parameter_names_and_leaves_the_listener_eager() -> None:
    model = LAS(tiny())
    names = list(model.state_dict())
    compile_model(model)
    assert list(model.state_dict()) == names  # checkpoints load either way
    assert model.speller.attention._compiled_call_impl is not None
    assert model.listener._compiled_call_impl is None  # inductor fails on its LSTMs under CUDA bf16


def test_attention_plots_of_any_utterance_id_stay_inside_the_plots_folder(experiment: Path) -> None:
    dev = experiment / "test-clean.jsonl"
    records = [json.loads(line) for line in dev.read_text().splitlines()]
    records[0]["id"], records[1]["id"] = "../../escaped", "x" * 300  # a path out of the folder, a name too long
    dev.write_text("".join(json.dumps(record) + "\n" for record in records))
    trainer = Trainer(load_config(TrainConfig, experiment / "tiny.yaml"), experiment / "exp", device="cpu")
    trainer.validate()
    plots = sorted(experiment.rglob("*.png"))
    assert len(plots) == 2 and all(p.parent == experiment / "exp" / "plots" and len(p.name) <= 104 for p in plots)


def test_a_run_none_of_whose_checkpoints_can_be_read_stops_instead_of_starting_afresh(experiment: Path, capsys) -> None:
    config = load_config(TrainConfig, experiment / "tiny.yaml", ["max_steps=2", "checkpoint_every=1"])
    Trainer(config, experiment / "exp", device="cpu")._loop()
    found = list_checkpoints(experiment / "exp" / "checkpoints")
    for path in found:
        path.write_bytes(path.read_bytes()[:100])
    damaged = {path: path.read_bytes() for path in found}
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "exp")]
    assert main([*args, "--set", "max_steps=2", "--set", "checkpoint_every=1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"asr: error: {experiment / 'exp' / 'checkpoints'}: none of its {len(found)} checkpoints can be read "
        "(see the warnings); move the folder away to train afresh, or use a new EXP_DIR"
    )
    assert {path: path.read_bytes() for path in list_checkpoints(experiment / "exp" / "checkpoints")} == damaged


def test_a_run_out_of_time_mid_epoch_stops_after_the_step_in_hand_validates_and_exports(
    experiment: Path, caplog
) -> None:
    exp = experiment / "exp"
    config = load_config(TrainConfig, experiment / "tiny.yaml", ["epochs=50", "max_minutes=1e-6", "plot_utterances=0"])
    with caplog.at_level(logging.INFO, logger="asr.training"):
        Trainer(config, exp, device="cpu").run()
    assert [v["step"] for v in json.loads((exp / "validations.json").read_text())] == [1]
    assert load_model_dir(exp / "model").model is not None
    assert "stopped at step 1: max_minutes=1e-06" in caplog.text and "time ran out in epoch 1" in caplog.text
    assert load_training_state(list_checkpoints(exp / "checkpoints")[-1])["progress"]["seconds"] > 0


def test_an_epoch_starts_only_while_the_longest_so_far_fits_in_the_budget(experiment: Path, caplog) -> None:
    """Each step "takes" a minute on the trainer's clock: an epoch of S steps takes S minutes, and a
    budget of 1.5 S minutes has room for one epoch, not two."""
    steps = Trainer(load_config(TrainConfig, experiment / "tiny.yaml"), experiment / "probe", device="cpu")
    per_epoch = len(steps.sampler)
    config = load_config(TrainConfig, experiment / "tiny.yaml", ["epochs=5", f"max_minutes={1.5 * per_epoch}"])
    trainer = Trainer(config, experiment / "exp", device="cpu")
    now = [0.0]
    trainer.budget = Budget(config.max_minutes, clock=lambda: now[0])
    take_step = trainer._train_step

    def a_minute_a_step(batches):
        now[0] += 60
        return take_step(batches)

    trainer._train_step = a_minute_a_step
    with caplog.at_level(logging.INFO, logger="asr.training"):
        trainer.run()
    assert trainer.progress.epoch == 1 and trainer.progress.step == per_epoch
    assert f"the next epoch would take about {per_epoch:.1f}" in caplog.text


def test_dev_utterances_are_drawn_in_equal_parts_from_each_dev_manifest(experiment: Path) -> None:
    dev = [str(experiment / "dev-clean.jsonl"), str(experiment / "test-clean.jsonl")]
    config = load_config(TrainConfig, experiment / "tiny.yaml", [f"data.dev={dev}", "data.dev_utterances=4"])
    drawn = Trainer(config, experiment / "exp", device="cpu").data.dev
    sources = [{u.id for u in read_manifest(manifest)} for manifest in dev]
    assert [len({u.id for u in drawn} & ids) for ids in sources] == [2, 2]


@pytest.mark.parametrize(
    ("sizes", "count", "expected"),
    [((10, 10), 4, [2, 2]), ((10, 1, 10), 7, [3, 1, 3]), ((2, 3), 100, [2, 3]), ((5, 5), None, [5, 5])],
)
def test_dev_shares_are_equal_and_a_small_part_s_shortfall_goes_to_the_others(sizes, count, expected) -> None:
    assert shares({f"m{i}": [None] * size for i, size in enumerate(sizes)}, count) == expected


def test_two_ranks_step_on_the_global_token_mean_not_on_a_mean_of_the_ranks_means(monkeypatch) -> None:
    """Rank 0 holds one utterance, rank 1 two with fewer characters: the average of their weighted
    gradients (what DDP applies) is the gradient of the loss over all three at once."""
    torch.manual_seed(0)
    model = LAS(tiny())
    features, lengths, targets, target_lengths = random_batch([40, 30, 36], [12, 3, 5])

    def gradient(loss: torch.Tensor) -> torch.Tensor:
        model.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    expected = gradient(model(features, lengths, targets, target_lengths).total)
    ranks = [torch.tensor([0]), torch.tensor([1, 2])]
    characters = float(target_lengths.sum())
    everywhere = torch.tensor([characters, characters + 3, 0], dtype=torch.float64)  # what all_sum gives every rank
    monkeypatch.setattr("asr.training.loop.all_sum", lambda values, world: everywhere)
    w, average = model.config.ctc_weight, torch.zeros_like(expected)
    for rank, rows in enumerate(ranks):
        ((ctc_weight, attention_weight),), empty = loss_weights(
            [SimpleNamespace(ids=("u",) * len(rows), target_lengths=target_lengths[rows])],
            World(rank=rank, size=2, grouped=True),
        )
        assert not empty
        losses = model(features[rows], lengths[rows], targets[rows][:, : int(target_lengths[rows].max())],
                       target_lengths[rows])  # fmt: skip
        average += gradient(w * ctc_weight * losses.ctc + (1 - w) * attention_weight * losses.attention) / 2
    torch.testing.assert_close(average, expected, rtol=1e-4, atol=1e-6)
    plain = loss_weights([SimpleNamespace(ids=("a", "b", "c"), target_lengths=target_lengths)], World())
    assert plain == ([[1.0, 1.0]], False)  # one process, one batch: the model's own means, unchanged
    monkeypatch.setattr("asr.training.loop.all_sum", lambda values, world: values)  # one process
    empty = SimpleNamespace(ids=(), target_lengths=torch.zeros(0, dtype=torch.long))
    assert loss_weights([empty], World()) == ([[0.0, 0.0]], True)
    monkeypatch.setattr("asr.training.loop.all_sum", lambda values, world: values + torch.tensor([0, 0, 1.0]))
    assert loss_weights([SimpleNamespace(ids=("a",), target_lengths=target_lengths[:1])], World(size=2))[1]


GERMAN = ["Die Straße ist größer.", "Über Äpfel und Öfen!", "Süße Grüße aus Köln.", "Weiß er's?"]
MANDARIN = ["今天天气很好。", "我们 去 公园 吧", "你好，世界！", "谢谢 你"]


def retell(manifest: Path, sentences: list[str]) -> None:
    """Give the utterances of `manifest` these transcripts, in turn (the audio stays English speech:
    what is tested is where the characters go, not what is learnt)."""
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    for i, record in enumerate(records):
        record["text"] = sentences[i % len(sentences)]
    manifest.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


@pytest.mark.parametrize(
    ("sentences", "text", "metric"),
    [
        (GERMAN, ["text.normalizer=unicode"], "wer"),
        (MANDARIN, ["text.normalizer=unicode", "text.spaces=false", "text.metric=cer"], "cer"),
    ],
)
def test_a_corpus_in_another_language_trains_on_its_own_characters_and_is_scored_by_its_normaliser(
    experiment: Path, sentences: list[str], text: list[str], metric: str
) -> None:
    """The vocabulary is drawn from the training transcripts (ß, ü, Chinese characters), saved with
    the normaliser in the model directory; evaluation normalises references as training did and
    reports the corpus's primary figure first."""
    retell(experiment / "dev-clean.jsonl", sentences)
    retell(experiment / "test-clean.jsonl", sentences[1:])
    exp = experiment / "exp"
    overrides = [item for setting in text for item in ("--set", setting)]
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp), "--set", "epochs=1"]
    assert main([*args, *overrides]) == 0
    loaded = load_model_dir(exp / "model")
    characters = set("".join(loaded.vocab.normalize(s) for s in sentences))
    assert set(loaded.vocab.characters) == characters and loaded.vocab.text.metric == metric
    assert ("ß" in characters) == (sentences is GERMAN) and ("天" in characters) == (sentences is MANDARIN)
    assert yaml.safe_load((exp / "model" / "config.yaml").read_text())["text"]["normalizer"] == "unicode"
    out = experiment / "eval"
    assert main(["evaluate", "--model", str(exp / "model"), "--manifest", str(experiment / "test-clean.jsonl"),
                 "--out", str(out), "--beam", "1", "--jobs", "0"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == metric
    refs = [json.loads(line)["ref"] for line in (out / "hyps.jsonl").read_text().splitlines()]
    assert set(refs) <= {loaded.vocab.normalize(s) for s in sentences[1:]}
    assert (out / "report.txt").read_text().startswith(metric.upper())


def test_characters_rarer_than_min_count_are_refused_naming_them_or_spelt_unk(experiment: Path, capsys) -> None:
    retell(experiment / "dev-clean.jsonl", ["aaa bbb", "aaa bbb", "aaa bbb", "aaa ßbb"])
    exp = experiment / "exp"
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(exp), "--set", "epochs=1"]
    args += ["--set", "text.normalizer=unicode", "--set", "text.min_count=2"]
    assert main(args) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "data.train: 1 characters occur fewer than text.min_count=2" in error
    assert "'ß' x1" in error and "text.rare=unknown" in error
    assert main([*args, "--set", "text.rare=unknown", "--replace"]) == 0
    vocab = load_model_dir(exp / "model").vocab
    assert vocab.unk_id == 4 and vocab.characters == (" ", "a", "b") and vocab.encode("ßa") == [4, 6]


def test_dev_characters_that_training_never_saw_are_said_and_spelt_unk(experiment: Path, caplog) -> None:
    """AISHELL's dev set holds characters its training set does not: validation goes on, and says so."""
    retell(experiment / "dev-clean.jsonl", ["今天天气很好", "我们去公园吧"])
    retell(experiment / "test-clean.jsonl", ["今天很冷"])
    args = ["train", "--config", str(experiment / "tiny.yaml"), "--out", str(experiment / "exp"), "--set", "epochs=1"]
    args += ["--set", "text.normalizer=unicode", "--set", "text.spaces=false", "--set", "text.metric=cer"]
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    said = [r.getMessage() for r in caplog.records]
    assert any(
        "2 characters the training transcripts never hold, spelt <unk> and scored as errors: '冷' x2" in line
        for line in said
    ), said
    assert "冷" not in load_model_dir(experiment / "exp" / "model").vocab.tokens
