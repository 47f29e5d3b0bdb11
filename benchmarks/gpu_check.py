"""The GPU check: what only a GPU can tell about this project, measured in one command.

    bash benchmarks/gpu_check.sh [--out DIR] [--budget 480]       # on a lent GPU machine (DIR: $OUT by default)
    bash benchmarks/gpu_check.sh --device cpu --quick --out DIR    # the CPU dry run: every part, tiny

The parts run one after another, each in its own process with a time box:

  env            which of the project's dependencies (pyproject.toml's, and its test extra)
                 import, and the project itself; the device, torch and CUDA
  tests          `pytest -m gpu tests`: the device tests (tests/test_gpu.py)
  speed          benchmarks/model_speed.py (bf16 on a GPU), eager: the benchmark batch (and
                 its greedy and beam-10 search), and a LibriSpeech-like training batch with
                 the model and max_frames of each recipes/librispeech config
  search         greedy and beam-10 search with train_clean_100.yaml's model on
                 LibriSpeech-like batches of 32 and 128 utterances, and beam 10 without and
                 with CTC weight 0.3 on 32 test-length utterances (2..35 s)
  train          benchmarks/gpu_check_train.py: `asr prepare librispeech` and `asr stats` on
                 the committed fixture, two steps of `asr train --device DEVICE` in bf16 (finite
                 losses, a checkpoint), a forced out-of-memory step (skipped, training goes on),
                 `asr transcribe --device`, `torchrun --nproc_per_node=1` (NCCL) through a
                 validation and a checkpoint, then resumed
  throughput     benchmarks/train_throughput.py: train_clean_100.yaml's training with the
                 optimizer and the loader in the loop on a LibriSpeech-shaped corpus made on the
                 machine, and the loader alone with one worker
  compiled       the speed part's training steps again with torch.compile (last: compiling
                 takes longest)
  extrapolation  hours per epoch of train-clean-100 and of 960 h at the measured speed

A part that would not fit in what is left of `--budget` seconds is skipped, and so is one
whose imports fail or whose device is missing, naming why; a part that fails or runs out
of time is recorded and the next one runs. Nothing is installed and nothing needs a
network. Written to OUT: gpu_check.jsonl (one record per measurement: part, name, status
ok|failed|timeout|skipped, its workload, its figures or the reason), gpu_check.md (the
short report, with the goals) and gpu_check_logs/ (each process's output). Both files are
rewritten as records arrive, so a run cut short leaves what it measured.

`--quick` runs every part at tiny sizes (model_speed's --tiny: a tiny model on a tenth of
the lengths; one repeat; one thread a process; search batches of 4 and 8; the speed part
for the benchmark and train_clean_100.yaml only, compiled for the benchmark only): its
figures mean nothing. On a CPU it also switches torch.compile off (TORCH_COMPILE_DISABLE=1:
compiling even a tiny model takes about two minutes there), so the compiled run checks the
plumbing only.

`--parts tests,train` runs only those (env always runs first); `--budget` sets the time.
This driver imports only the standard library (the parts import torch and the project in
their own processes). Exit status 0 whatever the parts found; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL_SPEED = ROOT / "benchmarks" / "model_speed.py"
THROUGHPUT = ROOT / "benchmarks" / "train_throughput.py"
TRAIN_CHECKS = ROOT / "benchmarks" / "gpu_check_train.py"
FIXTURE = ROOT / "tests" / "fixtures" / "LibriSpeech"
CONFIGS = ROOT / "recipes" / "librispeech" / "conf"
IMPORT_NAMES = {"pyyaml": "yaml"}
"""Distributions whose module is named otherwise."""
PROJECT_MODULES = ("asr", "asr.training.loop", "asr.cli")
"""What the parts import: their errors name a missing module that pyproject.toml does not list."""
CPU_TRAIN_STEP_SECONDS = 8.57
"""The benchmark batch's training step on the project's 2-core CPU VM (benchmarks/README.md, "after")."""
GOAL_SPEEDUP, GOAL_BEAM_RTF = 20.0, 0.01
GOAL_CTC_BEAM_RTF, GOAL_EPOCH_960_HOURS = 0.005, 1.0
"""Issue 29: beam 10 with CTC weight 0.3 on test lengths; an epoch of the 960 h with optimizer and loader."""
OUTCOMES = ("passed", "failed", "error", "skipped", "uncollected")
"""Of a test in the JUnit report; "uncollected": a test module that did not import."""


@dataclass(frozen=True)
class Corpus:
    """A LibriSpeech training set: hours of audio and utterances."""

    name: str
    hours: float
    utterances: int


CORPORA = {
    "train_clean_100.yaml": Corpus("train-clean-100", 100.6, 28_539),
    "train_960.yaml": Corpus("960 h (train-clean-100 + train-clean-360 + train-other-500)", 960.9, 281_241),
}


@dataclass(frozen=True)
class Finished:
    """A child process's end: ok, failed (non-zero exit) or timeout; the JSON objects it printed
    (one a line on stdout), and for a failure the last line of its error output."""

    status: str
    seconds: float
    lines: list[dict[str, Any]]
    reason: str = ""


@dataclass
class Check:
    """The check in progress: settings, the clock, the records so far and the files in OUT."""

    out: Path
    device: str
    quick: bool
    budget: float
    started: float = field(default_factory=time.monotonic)
    records: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.out / "gpu_check_logs"

    def left(self) -> float:
        """Seconds left of the budget."""
        return self.budget - (time.monotonic() - self.started)

    def add(self, record: dict[str, Any]) -> None:
        """Keep `record`, append it to gpu_check.jsonl and rewrite gpu_check.md."""
        self.records.append(record)
        with open(self.out / "gpu_check.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        try:
            text, said = report(self), summary(record)
        except Exception as error:  # a record the report cannot read must not stop the check
            text = f"# GPU check\n\nThe report failed ({type(error).__name__}: {error}); see gpu_check.jsonl.\n"
            said = "(not readable by the report)"
        (self.out / "gpu_check.md").write_text(text, encoding="utf-8")
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:5.0f} s] {record['part']}: {record['name']}: {record['status']} {said}", flush=True)

    def skip(self, part: str, name: str, workload: object, reason: str) -> None:
        self.add({"part": part, "name": name, "status": "skipped", "workload": workload, "reason": reason})

    def blocked(self, needs: tuple[str, ...], minimum: float) -> str | None:
        """Why a part cannot start now (a failed import, no CUDA, too little time), or None."""
        if not self.environment:
            return "the environment check did not finish"
        missing = self.environment.get("missing", {})
        failed = [f"{name} ({missing[name]})" for name in needs if name in missing]
        if failed:
            reason = "does not import: " + "; ".join(failed)
            dependencies = [name for name in missing if name not in PROJECT_MODULES]
            return reason + f"; missing: {', '.join(dependencies)}" if dependencies else reason
        if self.device.startswith("cuda") and not self.environment.get("cuda_available"):
            return "torch sees no CUDA device (torch.cuda.is_available() is False)"
        if self.left() < minimum:
            return f"{self.left():.0f} s left of the {self.budget:.0f} s budget; this needs at least {minimum:.0f} s"
        return None

    def child(self, name: str, command: list[str], box: float, env: dict[str, str] | None = None) -> Finished:
        """Run `command` in its own process group for at most `box` seconds (and what the budget leaves);
        its stderr and stdout go to gpu_check_logs/NAME.log. Quick: one thread, which a loaded CPU
        slows down far less than two that wait for each other."""
        timeout = max(1.0, min(box, self.left() - 5))
        env = {**(env or {}), **({"OMP_NUM_THREADS": "1"} if self.quick else {})}
        started = time.monotonic()
        log = self.logs / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".log")  # plain names travel best
        with open(log, "w", encoding="utf-8") as errors:
            errors.write(f"$ {' '.join(command)}\n")
            errors.flush()
            process = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True,
                env={**os.environ, **env},
            )  # fmt: skip
            try:
                stdout, _ = process.communicate(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the child and whatever it started (compile workers)
                stdout, _ = process.communicate()
                timed_out = True
        seconds = time.monotonic() - started
        with open(log, "a", encoding="utf-8") as errors:
            errors.write(f"--- stdout\n{stdout}")
        lines = []
        for line in stdout.splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    lines.append(parsed)
        if timed_out:
            return Finished("timeout", seconds, lines, f"stopped after {timeout:.0f} s (its time box)")
        if process.returncode != 0:
            return Finished("failed", seconds, lines, f"exit status {process.returncode}: {last_error_line(log)}")
        return Finished("ok", seconds, lines)


def last_error_line(log: Path) -> str:
    """The last line of a child's error output that says something (usually the exception)."""
    text = log.read_text(encoding="utf-8", errors="replace").split("--- stdout")[0]
    lines = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    return lines[-1][:400] if lines else "no error output"


# ------------------------------------------------------------------ the parts
def check_environment(check: Check) -> None:
    command = [sys.executable, str(Path(__file__).resolve()), "--facts", "--device", check.device]
    finished = check.child("env", command, box=90)
    facts = finished.lines[-1] if finished.lines else {}
    check.environment = facts
    record = {"part": "env", "name": "environment", "status": finished.status if facts else "failed"}
    record["workload"] = "import each dependency and the project; torch's view of the device"
    if finished.reason or not facts:
        record["reason"] = finished.reason or "printed no facts"
    check.add({**record, **facts, "seconds": round(finished.seconds, 1)})


def declared_modules() -> dict[str, str]:
    """Module name -> distribution name for pyproject.toml's dependencies and its test extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + project.get("optional-dependencies", {}).get("test", [])
    names = [re.match(r"[A-Za-z0-9._-]+", requirement).group().lower() for requirement in requirements]
    return {IMPORT_NAMES.get(name, name.replace("-", "_")): name for name in names}


def environment_facts(device: str) -> dict[str, Any]:
    """Run in the child: versions of what imports, the error of what does not, the device."""
    versions: dict[str, str] = {}
    missing: dict[str, str] = {}
    distributions = {**declared_modules(), **dict.fromkeys(PROJECT_MODULES, "las-asr")}
    for name, distribution in distributions.items():
        try:
            importlib.import_module(name)
        except Exception as error:  # whatever stops an import is what this part reports
            missing[name] = f"{type(error).__name__}: {error}"
            continue
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[name] = "imports (not installed: from the working tree)"
    facts: dict[str, Any] = {"versions": versions, "missing": missing, "python": platform.python_version()}
    facts["cpus"] = os.cpu_count()
    if "torch" in missing:
        return facts
    import torch

    facts.update(cuda_available=torch.cuda.is_available(), torch_cuda=torch.version.cuda)
    if device.startswith("cuda") and torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(torch.device(device))
        facts.update(
            device=properties.name,
            memory_gib=round(properties.total_memory / 2**30, 1),
            capability=f"{properties.major}.{properties.minor}",
            bf16_supported=torch.cuda.is_bf16_supported(),
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        facts["device"] = platform.processor() or platform.machine()
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            facts["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
    return facts


def check_tests(check: Check) -> None:
    workload = f"pytest -m gpu tests (device tests; they skip without CUDA) on {check.device}"
    why = check.blocked(("pytest", "asr"), minimum=30)
    if why:
        check.skip("tests", "pytest -m gpu", workload, why)
        return
    junit = check.logs / "pytest_gpu.xml"
    command = [
        sys.executable, "-m", "pytest", "-m", "gpu", "tests", "-q", "-p", "no:cacheprovider",
        "--continue-on-collection-errors", f"--junitxml={junit}",
    ]  # fmt: skip
    finished = check.child("tests", command, box=180)
    tests = junit_results(junit)
    counts = {outcome: sum(t["outcome"] == outcome for t in tests) for outcome in OUTCOMES}
    selected = counts["passed"] + counts["failed"] + counts["error"] + counts["skipped"]
    status, reason = "failed", ""
    if finished.status == "timeout":
        status, reason = "timeout", finished.reason
    elif counts["failed"] or counts["error"]:
        reason = f"{counts['failed'] + counts['error']} device tests failed or errored"
    elif not selected:
        reason = finished.reason or "no test was selected: is the gpu marker gone?"
    elif check.device.startswith("cuda") and counts["passed"] == 0:
        reason = "every device test skipped on a CUDA machine"
    else:
        status = "ok"  # modules that could not be collected (a missing test dependency) are listed, not failed
    record = {"part": "tests", "name": "pytest -m gpu", "status": status, "workload": workload, **counts}
    if reason:
        record["reason"] = reason
    check.add({**record, "seconds": round(finished.seconds, 1), "tests": tests})


def junit_results(path: Path) -> list[dict[str, str]]:
    """Each test case of a JUnit XML report: its name, outcome and the first line of any message
    (none if pytest was stopped before it wrote the report)."""
    try:
        cases = list(ElementTree.parse(path).getroot().iter("testcase"))
    except (OSError, ElementTree.ParseError):
        return []
    results = []
    for case in cases:
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                if child.get("message") == "collection failure":
                    outcome = "uncollected"
                said = [(child.get("message") or "").strip().split("\n")[0]]
                detail = [line.strip() for line in (child.text or "").splitlines() if line.strip()]
                message = " / ".join(said + detail[-1:] if child.tag != "skipped" else said)[:300]
        results.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome, "message": message})
    return results


def run_model_speed(check: Check, part: str, label: str, arguments: list[str], box: float, compiled: bool) -> None:
    """One run of benchmarks/model_speed.py: a record per line it prints, and one for a failure."""
    mode = "compiled" if compiled else "eager"
    threads = 1 if check.quick else min(os.cpu_count() or 1, 8)
    command = [sys.executable, str(MODEL_SPEED), "--device", check.device, "--threads", str(threads), *arguments]
    env = {}
    if check.quick:
        command += ["--tiny", "--repeats", "1", "--warmups", "0"]
    if compiled:
        command.append("--compile")
        if check.quick and check.device == "cpu":
            env["TORCH_COMPILE_DISABLE"] = "1"
    name = f"{part}_{label}_{mode}"
    why = check.blocked(
        ("asr", "asr.training.loop") if compiled else ("asr",), minimum=min(box, 90 if compiled else 30)
    )
    if why:
        check.skip(part, f"{label} ({mode})", {"name": label, "command": " ".join(command[1:])}, why)
        return
    finished = check.child(name, command, box, env)
    for line in finished.lines:
        record = {"part": part, "name": line.pop("measure"), "status": "ok", "mode": mode}
        if env:
            record["note"] = "quick: torch.compile switched off (TORCH_COMPILE_DISABLE=1); plumbing only"
        check.add({**record, "workload": line.pop("workload"), **line})
    if finished.status != "ok":
        workload = {"name": label, "command": " ".join(command[1:])}
        check.add({"part": part, "name": f"{label} ({mode})", "status": finished.status, "mode": mode,
                   "workload": workload, "reason": finished.reason, "seconds": round(finished.seconds, 1)})  # fmt: skip


def check_speed(check: Check, compiled: bool) -> None:
    """The benchmark batch (eager: with its searches), then a LibriSpeech-like batch of each config,
    training steps only; quick: the first two eager and the first compiled (the others run the same code)."""
    runs = [("benchmark", ["--workload", "benchmark", *(["--measures", "train"] if compiled else [])])]
    for config in CORPORA:
        arguments = ["--workload", "librispeech", "--config", str(CONFIGS / config), "--measures", "train"]
        runs.append((f"librispeech {config}", arguments))
    kept = 1 if compiled else 2
    for index, (label, arguments) in enumerate(runs):
        if check.quick and index >= kept:
            mode = "compiled" if compiled else "eager"
            check.skip("speed", f"{label} ({mode})", {"name": label}, f"quick: only the first {kept} run")
            continue
        run_model_speed(check, "speed", label, arguments, box=240 if compiled else 120, compiled=compiled)


def check_search(check: Check) -> None:
    """Greedy and beam-10 search with train_clean_100.yaml's model on LibriSpeech-like batches, then
    beam 10 without and with CTC on test-length utterances."""
    config = ["--config", str(CONFIGS / "train_clean_100.yaml")]
    for utterances in (4, 8) if check.quick else (32, 128):
        arguments = ["--workload", "librispeech", *config, "--utterances", str(utterances)]
        run_model_speed(check, "search", f"batch {utterances}", [*arguments, "--measures", "greedy,beam10"], box=120,
                        compiled=False)  # fmt: skip
    arguments = ["--workload", "librispeech-test", *config, "--utterances", "4" if check.quick else "32"]
    arguments += ["--measures", "beam10,beam10_ctc", "--ctc-weight", "0.3"]
    run_model_speed(check, "search", "test lengths", arguments, box=150, compiled=False)


def check_throughput(check: Check) -> None:
    """Training with the optimizer and the loader in the loop, then the loader alone with one worker."""
    config = CONFIGS / "train_clean_100.yaml"
    runs = [("training", [], 200), ("loader, 1 worker", ["--loader-only", "--workers", "1"], 90)]
    for label, options, box in runs:
        command = [sys.executable, str(THROUGHPUT), "--device", check.device, "--config", str(config), *options]
        if check.quick:
            command += ["--tiny", "--steps", "3", "--warmups", "1", "--workers", "0"]
        workload = {"name": label, "config": str(config), "command": " ".join(command[1:])}
        why = check.blocked(("asr.training.loop",), minimum=min(box, 60))
        if why:
            check.skip("throughput", label, workload, why)
            continue
        finished = check.child(f"throughput_{label}", command, box)
        for line in finished.lines:
            check.add({"part": "throughput", "name": line.pop("measure"), "status": "ok", **line})
        if finished.status != "ok":
            check.add({"part": "throughput", "name": label, "status": finished.status, "workload": workload,
                       "reason": finished.reason, "seconds": round(finished.seconds, 1)})  # fmt: skip


def check_training(check: Check) -> None:
    workload = f"the committed fixture {FIXTURE.relative_to(ROOT)} (4 + 2 utterances), a tiny LAS, bf16"
    why = check.blocked(("asr.training.loop", "asr.cli"), minimum=40)
    if why:
        check.skip("train", "asr train", workload, why)
        return
    command = [sys.executable, str(TRAIN_CHECKS), "--device", check.device]
    finished = check.child("train", command, box=150)
    for line in finished.lines:
        check.add({**line, "workload": workload})
    if finished.status != "ok":
        check.add({"part": "train", "name": "asr train checks", "status": finished.status, "workload": workload,
                   "reason": finished.reason, "seconds": round(finished.seconds, 1)})  # fmt: skip


def extrapolate(check: Check) -> None:
    """Hours per epoch of each corpus at the speed measured with its config (one GPU)."""
    for config, corpus in CORPORA.items():
        for mode in ("eager", "compiled"):
            workload = {"corpus": corpus.name, "hours": corpus.hours, "utterances": corpus.utterances,
                        "config": config, "mode": mode}  # fmt: skip
            measured = [
                r for r in check.records
                if r["part"] == "speed" and r["name"] == "train_step" and r["status"] == "ok" and r["mode"] == mode
                and Path(str(r["workload"].get("config", ""))).name == config
            ]  # fmt: skip
            name = f"{config} ({mode})"
            if not measured:
                check.skip("extrapolation", name, workload, f"no {mode} training step of {config} was measured")
                continue
            step = measured[-1]
            audio_rate = step["workload"]["audio_seconds"] / step["seconds"]  # seconds of audio per second
            record = {"part": "extrapolation", "name": name, "status": "ok", "workload": workload}
            record["hours_per_epoch"] = round(corpus.hours / audio_rate, 2)
            record["hours_per_epoch_by_utterances"] = round(corpus.utterances / step["utterances_per_second"] / 3600, 2)
            record["note"] = (
                "one GPU, forward + backward of one median-length batch (no optimizer step, data loading or "
                "validation), scaled by hours of audio (and by utterances)"
                + ("; quick: a tiny model, the figure means nothing" if check.quick else "")
            )
            check.add(record)


# ------------------------------------------------------------------ the report
def summary(record: dict[str, Any]) -> str:
    """The record's result in a few words."""
    if record["status"] != "ok":
        return record.get("reason", "")
    name = record["name"]
    if record["part"] == "env":
        missing = ", ".join(record.get("missing", {})) or "nothing"
        return f"{record.get('device', '?')}; missing: {missing}"
    if record["part"] == "tests":
        return ", ".join(f"{record[outcome]} {outcome}" for outcome in OUTCOMES)
    if name == "train_step":
        rate, peak = record["utterances_per_second"], record["peak_memory_mib"]
        return f"{record['seconds']:.3f} s a step, {rate:.1f} utt/s, RTF {record['rtf']:.4f}, peak {peak} MiB"
    if name.endswith("_decode"):
        return f"{record['seconds']:.3f} s, RTF {record['rtf']:.4f}, peak {record['peak_memory_mib']} MiB"
    if name == "compile_and_first_step":
        return f"{record['seconds']:.1f} s"
    if name == "model":
        return f"{record['parameters'] / 1e6:.1f} M parameters, peak {record['peak_memory_mib']} MiB"
    if name == "train_throughput":
        hours = record["hours_per_epoch"]
        return (f"{record['seconds_per_step']:.3f} s a step, {record['utterances_per_second']:.1f} utt/s, loader wait "
                f"{100 * record['loader_wait_share']:.0f} %, epoch {hours.get('train-clean-100')} h / "
                f"{hours.get('960 h')} h (960 h)")  # fmt: skip
    if name == "loader_throughput":
        return f"{record['utterances_per_second_per_worker']:.1f} utt/s a worker ({record['workers']} workers)"
    if record["part"] == "extrapolation":
        return f"{record['hours_per_epoch']} h an epoch ({record['hours_per_epoch_by_utterances']} h by utterances)"
    return str(record.get("result", ""))


def describe(workload: object) -> str:
    """A workload in a few words."""
    if not isinstance(workload, dict):
        return str(workload)
    words = [str(workload.get("name") or workload.get("corpus", ""))]
    if workload.get("config"):
        words.append(Path(str(workload["config"])).name)
    if "utterances" in workload:
        words.append(f"{workload['utterances']} utt")
    if "audio_seconds" in workload:
        words.append(f"{workload['audio_seconds']:.0f} s of audio")
    if workload.get("tiny"):
        words.append("tiny")
    return ", ".join(word for word in words if word)


def goals(check: Check) -> list[tuple[str, str, str]]:
    """(goal, what was measured, verdict) for the goals of benchmarks/README.md."""
    ok = [r for r in check.records if r["status"] == "ok"]
    steps = [r for r in ok if r["name"] == "train_step" and r["workload"].get("name") == "benchmark"]
    speedups = [f"{r['seconds']:.3f} s {r['mode']} ({CPU_TRAIN_STEP_SECONDS / r['seconds']:.1f}x)" for r in steps]
    fastest = max((CPU_TRAIN_STEP_SECONDS / r["seconds"] for r in steps), default=None)
    beams = [r for r in ok if r["name"] == "beam10_decode" and r["mode"] == "eager"]
    rtfs = [f"{describe(r['workload'])}: {r['rtf']:.4f}" for r in beams]
    bf16_tests = [t for r in check.records if r["part"] == "tests" for t in r.get("tests", []) if "bf16" in t["name"]]
    trained = [r for r in check.records if r["name"] == "asr_train_two_steps_bf16"]
    seen = [f"device test {t['outcome']}" for t in bf16_tests] + [f"asr train in bf16 {r['status']}" for r in trained]
    tested = [t for t in bf16_tests if t["outcome"] != "skipped"]
    clean = all(t["outcome"] == "passed" for t in tested) and all(r["status"] == "ok" for r in trained)

    ctc_beams = [r for r in ok if r["name"] == "beam10_ctc_decode"]
    ctc_rtfs = [f"{r['rtf']:.4f} (peak {r['peak_memory_mib']} MiB)" for r in ctc_beams]
    throughputs = [r for r in ok if r["name"] == "train_throughput"]
    epochs = [
        f"{r['hours_per_epoch']['960 h']} h, loader wait {100 * r['loader_wait_share']:.0f} %" for r in throughputs
    ]
    torchrun = [r for r in check.records if r["name"] == "torchrun_one_process"]

    def verdict(measured: bool, met: bool) -> str:
        said = "not measured" if not measured else "met" if met else "not met"
        return f"{said} (quick: meaningless)" if check.quick and measured else said

    return [
        (f"benchmark-batch training step at least {GOAL_SPEEDUP:.0f}x faster than on the 2-core CPU "
         f"({CPU_TRAIN_STEP_SECONDS} s)", "; ".join(speedups) or "-",
         verdict(fastest is not None, (fastest or 0) >= GOAL_SPEEDUP)),
        (f"beam-10 RTF below {GOAL_BEAM_RTF}", "; ".join(rtfs) or "-",
         verdict(bool(beams), all(r["rtf"] < GOAL_BEAM_RTF for r in beams))),
        ("no NaN in bf16 (the bf16 device test and asr train in bf16)", "; ".join(seen) or "-",
         verdict(bool(tested and trained) or not clean, clean)),
        (f"beam 10 with CTC weight 0.3 on 32 test-length utterances: RTF below {GOAL_CTC_BEAM_RTF}",
         "; ".join(ctc_rtfs) or "-", verdict(bool(ctc_beams), all(r["rtf"] < GOAL_CTC_BEAM_RTF for r in ctc_beams))),
        (f"an epoch of the 960 h (train_clean_100.yaml's model, optimizer and loader) under {GOAL_EPOCH_960_HOURS:g} h",
         "; ".join(epochs) or "-",
         verdict(bool(throughputs), all(r["hours_per_epoch"]["960 h"] < GOAL_EPOCH_960_HOURS for r in throughputs))),
        ("torchrun, one process: validation, checkpoint and resume", "; ".join(r.get("result", r.get("reason", ""))
         for r in torchrun) or "-", verdict(bool(torchrun), all(r["status"] == "ok" for r in torchrun))),
    ]  # fmt: skip


def report(check: Check) -> str:
    """gpu_check.md: the machine, the goals, a line per record, what failed."""
    env = check.environment
    used = time.monotonic() - check.started
    lines = ["# GPU check", ""]
    lines.append(
        f"{env.get('device', '?')} ({env.get('memory_gib', '?')} GiB, compute capability {env.get('capability', '-')}),"
        f" torch {env.get('versions', {}).get('torch', '?')} (CUDA {env.get('torch_cuda')}), Python"
        f" {env.get('python', '?')}, {env.get('cpus', '?')} CPUs; {time.strftime('%Y-%m-%d %H:%M %Z')};"
        f" {used:.0f} s of a {check.budget:.0f} s budget; `--device {check.device}`."
    )
    missing = env.get("missing", {})
    lines += ["", "Missing: " + ("; ".join(f"{k} ({v})" for k, v in missing.items()) or "nothing") + "."]
    if check.quick:
        lines += ["", "**Quick dry run (`--quick`): tiny sizes, the figures mean nothing.**"]
    lines += ["", "## Goals", "", "| goal | measured | verdict |", "|---|---|---|"]
    lines += [f"| {goal} | {measured} | {verdict} |" for goal, measured, verdict in goals(check)]
    lines += ["", "## Records", "", "| part | measure | mode | workload | result | status |", "|---" * 6 + "|"]
    for r in check.records:
        cells = [r["part"], r["name"], r.get("mode", ""), describe(r["workload"]), summary(r), r["status"]]
        lines.append("| " + " | ".join(str(cell).replace("|", "/") for cell in cells) + " |")
    failures = [t for r in check.records for t in r.get("tests", []) if t["outcome"] != "passed"]
    if failures:
        lines += ["", "## Device tests that did not pass", ""]
        lines += [f"- {t['name']}: {t['outcome']}: {t['message']}" for t in failures]
    lines += ["", "Every figure with its workload: gpu_check.jsonl; each process's output: gpu_check_logs/.", ""]
    return "\n".join(lines)


# -------------------------------------------------------------------- main
PARTS = {
    "env": check_environment,
    "tests": check_tests,
    "speed": functools.partial(check_speed, compiled=False),
    "search": check_search,
    "train": check_training,
    "throughput": check_throughput,
    "compiled": functools.partial(check_speed, compiled=True),
    "extrapolation": extrapolate,
}
"""In the order they run; "compiled" is the speed part again with torch.compile."""


def part_list(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated part names, in the order they run, env always first."""
    names = {name.strip() for name in text.split(",") if name.strip()} | {"env"}
    if names - set(PARTS):
        raise argparse.ArgumentTypeError(f"expected some of {','.join(PARTS)}, got {text!r}")
    return tuple(name for name in PARTS if name in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT"), help="output folder (default: $OUT)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="every part at tiny sizes (a dry run)")
    parser.add_argument("--budget", type=float, default=480, help="seconds for all parts (default: %(default)s)")
    parser.add_argument(
        "--parts", type=part_list, default=tuple(PARTS), help=f"some of {','.join(PARTS)} (default: all; env always)"
    )
    parser.add_argument("--facts", action="store_true", help="internal: print the env part's facts (its process)")
    args = parser.parse_args()
    if args.facts:
        print(json.dumps(environment_facts(args.device)))
        return 0
    if args.out is None:
        parser.error("give --out DIR (or set OUT)")
    check = Check(Path(args.out), args.device, args.quick, args.budget)
    check.logs.mkdir(parents=True, exist_ok=True)
    (check.out / "gpu_check.jsonl").write_text("", encoding="utf-8")
    for part in args.parts:
        try:
            PARTS[part](check)
        except Exception as error:  # a bug here must not cost the parts after it
            logging.exception("part %s", part)
            reason = f"gpu_check.py: {type(error).__name__}: {error}"
            check.add({"part": part, "name": "driver", "status": "failed", "workload": "-", "reason": reason})
    print(f"\n{(check.out / 'gpu_check.md').read_text(encoding='utf-8')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
