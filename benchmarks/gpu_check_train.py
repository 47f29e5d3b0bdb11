"""The GPU check's train part (benchmarks/gpu_check.py runs it in its own process): on the committed
LibriSpeech fixture, `asr prepare librispeech` and `asr stats`, two steps of `asr train --device
DEVICE` in bf16, a run whose first step hits an out-of-memory error, `asr transcribe --device`, and
`torchrun --nproc_per_node=1` (a process group of one: NCCL on a GPU, gloo on a CPU) through a
validation and a checkpoint, then resumed for one more step.

    python benchmarks/gpu_check_train.py --device cuda

Prints one JSON record a line (part "train"; status ok, or failed with the checks that did not
hold); logs go to stderr. Everything is written in a temporary folder that is removed after.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from asr.checkpoint import list_checkpoints, load_training_state
from asr.cli import main as asr
from asr.config import load_config
from asr.training.config import TrainConfig
from asr.training.loop import Trainer

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "LibriSpeech"


def train_checks(device: str) -> None:
    """Prepare, stats, two bf16 steps, a forced out-of-memory step, transcription.
    Prints one JSON record a line."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        work = Path(folder)
        started = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):
            prepared = asr(["prepare", "librispeech", str(FIXTURE), "--subsets", "dev-clean,test-clean",
                            "--out", str(work), "--jobs", "2"])  # fmt: skip
            stats = asr(["stats", str(work / "dev-clean.jsonl"), "--out", str(work / "cmvn.json"), "--jobs", "1"])
        checks = {"asr prepare librispeech exits 0": prepared == 0, "asr stats exits 0": stats == 0}
        emit("prepare_and_stats", checks, started, "manifests and statistics of the fixture")
        if not all(checks.values()):
            return
        config = work / "tiny.yaml"
        # bf16 as on a GPU; a CPU dry run on a CPU without bf16 kernels (no AVX-512 BF16 or AMX) trains in fp32
        bf16 = device.startswith("cuda") or torch.ops.mkldnn._is_mkldnn_bf16_supported()
        config.write_text(json.dumps(tiny_training(work, "bf16" if bf16 else "fp32")), encoding="utf-8")  # JSON is YAML
        for step in (train_two_steps, out_of_memory_step, transcribe_on_device, torchrun_one_process):
            started = time.monotonic()
            try:
                step(work, config, device, started)
            except Exception as error:  # a check that crashes is a failed check; the next one runs
                logging.exception("%s crashed", step.__name__)
                print(json.dumps({"part": "train", "name": step.__name__, "status": "failed",
                                  "reason": f"{type(error).__name__}: {error}"[:400]}), flush=True)  # fmt: skip


def tiny_training(work: Path, precision: str) -> dict[str, Any]:
    """A tiny LAS trained for two steps in `precision`, one checkpoint a step, on the fixture's manifests."""
    return {
        "data": {
            "train": str(work / "dev-clean.jsonl"),
            "dev": str(work / "test-clean.jsonl"),
            "stats": str(work / "cmvn.json"),
            "max_frames": 500,
            "num_workers": 0,
        },
        "model": {
            "listener": {"layers": 2, "units": 32, "reduce": [1], "dropout": 0.1},
            "attention": {"kind": "location", "dim": 32},
            "speller": {"units": 32, "embedding_dim": 16, "dropout": 0.1},
        },
        "decoding": {"beam": 2},
        "precision": precision,
        "epochs": 2,
        "max_steps": 2,
        "checkpoint_every": 1,
        "log_every": 1,
        "plot_utterances": 0,
        "average_best": 1,
    }


def emit(name: str, checks: dict[str, bool], started: float, result: str, **figures: Any) -> None:
    """Print the record of a train-part check: ok if every named check holds, else the ones that failed."""
    record: dict[str, Any] = {"part": "train", "name": name, "status": "ok" if all(checks.values()) else "failed"}
    if not all(checks.values()):
        record["reason"] = "failed: " + "; ".join(claim for claim, held in checks.items() if not held)
    record.update(result=result, checks=checks, seconds=round(time.monotonic() - started, 1), **figures)
    print(json.dumps(record), flush=True)


def logged_losses(folder: Path) -> dict[int, float]:
    """Training losses by step from a run's TensorBoard events."""
    events = EventAccumulator(str(folder))
    events.Reload()
    if "train/loss" not in events.Tags()["scalars"]:
        return {}
    return {event.step: event.value for event in events.Scalars("train/loss")}


def train_two_steps(work: Path, config: Path, device: str, started: float) -> None:
    """`asr train` for two steps: finite losses, no step skipped, checkpoints and a model directory."""
    exp = work / "exp"
    with contextlib.redirect_stdout(sys.stderr):
        status = asr(["train", "--config", str(config), "--out", str(exp), "--device", device])
    checkpoints = list_checkpoints(exp / "checkpoints")
    progress = load_training_state(checkpoints[-1])["progress"] if checkpoints else {}
    losses = logged_losses(exp / "tensorboard")
    checks = {
        "asr train exits 0": status == 0,
        "a checkpoint is written": bool(checkpoints),
        "2 steps taken": progress.get("step") == 2,
        "no step skipped (a non-finite loss or gradient skips one)": progress.get("skipped_steps") == 0,
        "2 finite training losses logged": len(losses) == 2 and all(math.isfinite(v) for v in losses.values()),
        "the model directory is exported": (exp / "model").is_dir(),
    }
    shown = ", ".join(f"{value:.3f}" for value in losses.values())
    result = f"losses {shown}; {checkpoints[-1].name if checkpoints else 'no checkpoint'}"
    precision = json.loads(config.read_text(encoding="utf-8"))["precision"]
    emit(
        "asr_train_two_steps_bf16", checks, started, result,
        losses=losses, checkpoints=[p.name for p in checkpoints], precision=precision,
    )  # fmt: skip


def raise_out_of_memory(device: torch.device) -> None:
    """On a GPU, a real out-of-memory error from the CUDA allocator (twice the GPU's memory asked
    for); on a CPU, a raised one."""
    if device.type == "cuda":
        torch.empty(2 * torch.cuda.get_device_properties(device).total_memory, dtype=torch.uint8, device=device)
    raise torch.OutOfMemoryError(f"out of memory forced on {device} by gpu_check")


def out_of_memory_step(work: Path, config: Path, device: str, started: float) -> None:
    """A run whose first step runs out of memory: that step is skipped with a warning, step 2 trains."""
    exp = work / "exp_out_of_memory"
    trainer = Trainer(load_config(TrainConfig, config), exp, device=device)
    forward = trainer.step_model
    calls = []

    def out_of_memory_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(calls))
        if len(calls) == 1:
            raise_out_of_memory(trainer.device)
        return forward(*args, **kwargs)

    trainer.step_model = out_of_memory_once
    kept = WarningsKept()
    logging.getLogger("asr.training").addHandler(kept)
    try:
        trainer.run()
    finally:
        logging.getLogger("asr.training").removeHandler(kept)
    checkpoints = list_checkpoints(exp / "checkpoints")
    progress = load_training_state(checkpoints[-1])["progress"] if checkpoints else {}
    losses = logged_losses(exp / "tensorboard")
    checks = {
        "the out-of-memory step is skipped": progress.get("skipped_steps") == 1,
        "training goes on to step 2": progress.get("step") == 2 and len(calls) >= 2,
        "the next step's loss is finite": 2 in losses and math.isfinite(losses[2]),
        "a warning is logged": bool(kept.messages),
        "a checkpoint is written": bool(checkpoints),
    }
    how = "an allocation of twice the GPU's memory" if trainer.device.type == "cuda" else "a raised OutOfMemoryError"
    result = f"step 1 out of memory ({how}), skipped; step 2 loss {losses.get(2, float('nan')):.3f}"
    emit("out_of_memory_step_skipped", checks, started, result, warnings=kept.messages[:3])


class WarningsKept(logging.Handler):
    """Keeps the messages of the warnings logged while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def transcribe_on_device(work: Path, config: Path, device: str, started: float) -> None:
    """`asr transcribe --device DEVICE` of a fixture recording with the model of train_two_steps."""
    recording = FIXTURE / "test-clean" / "1003" / "2003" / "1003-2003-0000.flac"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = asr(["transcribe", "--model", str(work / "exp" / "model"), str(recording), "--device", device,
                      "--beam", "4"])  # fmt: skip
    checks = {"asr transcribe exits 0": status == 0}
    result = f"{recording.name}: {len(printed.getvalue().strip())} characters of text (the model is untrained)"
    emit("transcribe_on_device", checks, started, result)


def torchrun_one_process(work: Path, config: Path, device: str, started: float) -> None:
    """`torchrun --nproc_per_node=1 -m asr train`: a process group of one (NCCL on a GPU) through a
    validation and a checkpoint at step 1 and 2, then the same command with max_steps=3 resumes."""
    exp = work / "exp_torchrun"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "asr",
               "-v", "train", "--config", str(config), "--out", str(exp), "--device", device,
               "--set", "validate_every=1"]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, timeout=240)
    resumed = subprocess.run([*command, "--set", "max_steps=3"], capture_output=True, text=True, timeout=240)
    for finished in (first, resumed):
        sys.stderr.write(finished.stderr[-4000:])
    validations = json.loads((exp / "validations.json").read_text()) if (exp / "validations.json").exists() else []
    checkpoints = list_checkpoints(exp / "checkpoints")
    progress = load_training_state(checkpoints[-1])["progress"] if checkpoints else {}
    backend = "nccl" if device.startswith("cuda") else "gloo"
    checks = {
        "the first run exits 0": first.returncode == 0,
        "the resumed run exits 0": resumed.returncode == 0,
        "it resumed from step 2": "resumed at step 2" in resumed.stderr,
        "validated at steps 1, 2 and 3": [v.get("step") for v in validations] == [1, 2, 3],
        "a checkpoint of step 3": progress.get("step") == 3,
    }
    result = f"{backend}: validations at steps {[v.get('step') for v in validations]}; {len(checkpoints)} checkpoints"
    emit("torchrun_one_process", checks, started, result, backend=backend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: %(default)s)")
    train_checks(parser.parse_args().device)


if __name__ == "__main__":
    main()
