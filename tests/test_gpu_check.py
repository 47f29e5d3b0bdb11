"""The GPU check's CPU dry run: every part of benchmarks/gpu_check.sh runs and records itself, so the
check cannot rot while no GPU is lent; and a dependency that does not import is named, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("env", "tests", "speed", "search", "train", "throughput", "extrapolation")


def dry_run(out: Path, *options: str, pythonpath: Path | None = None) -> list[dict[str, Any]]:
    """Run the check on the CPU with --quick; its records, after checking that it exits 0 and writes its report."""
    env = {**os.environ, "PYTHON": sys.executable}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    command = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--quick", "--out", str(out)]
    finished = subprocess.run([*command, *options], env=env, capture_output=True, text=True, timeout=400)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "## Goals" in (out / "gpu_check.md").read_text()
    return [json.loads(line) for line in (out / "gpu_check.jsonl").read_text().splitlines()]


def test_the_quick_cpu_dry_run_records_every_part_with_its_workload(tmp_path: Path) -> None:
    records = dry_run(tmp_path)
    assert {r["part"] for r in records} == set(PARTS)
    assert not [r for r in records if r["status"] in ("failed", "timeout")]
    assert all(r["workload"] for r in records)
    done = {(r["part"], r["name"], r.get("mode")) for r in records if r["status"] == "ok"}
    assert {
        ("env", "environment", None),
        ("tests", "pytest -m gpu", None),
        ("speed", "train_step", "eager"),
        ("speed", "beam10_decode", "eager"),
        ("speed", "compile_and_first_step", "compiled"),
        ("speed", "train_step", "compiled"),
        ("search", "greedy_decode", "eager"),
        ("search", "beam10_decode", "eager"),
        ("train", "asr_train_two_steps_bf16", None),
        ("train", "out_of_memory_step_skipped", None),
        ("train", "transcribe_on_device", None),
        ("train", "torchrun_one_process", None),
        ("search", "beam10_ctc_decode", "eager"),
        ("throughput", "train_throughput", None),
        ("throughput", "loader_throughput", None),
        ("extrapolation", "train_clean_100.yaml (eager)", None),
    } <= done
    (tests,) = [r for r in records if r["part"] == "tests"]
    assert tests["passed"] + tests["skipped"] >= 4 and tests["failed"] == tests["error"] == 0  # tests/test_gpu.py
    speeds = [r["workload"] for r in records if r["part"] == "speed" and r["name"] == "train_step"]
    assert {w["name"] for w in speeds} == {"benchmark", "librispeech"}
    searched = [r["workload"] for r in records if r["part"] == "search" and r["name"] == "beam10_decode"]
    assert {(w["name"], w["utterances"]) for w in searched} == {
        ("librispeech", 4),
        ("librispeech", 8),
        ("librispeech-test", 4),
    }


def test_a_dependency_that_does_not_import_is_named_and_what_needs_it_is_skipped(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden" / "tensorboard"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    records = dry_run(tmp_path / "out", "--parts", "train", pythonpath=hidden.parent)
    (env,) = [r for r in records if r["part"] == "env"]
    assert "hidden by the test" in env["missing"]["tensorboard"] and "asr.training.loop" in env["missing"]
    (train,) = [r for r in records if r["part"] == "train"]
    assert train["status"] == "skipped" and "tensorboard" in train["reason"]
    assert "tensorboard (ImportError: hidden by the test)" in (tmp_path / "out" / "gpu_check.md").read_text()
