"""benchmarks/profile_model.py runs and reports each view's top entries, largest first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_tiny_profile_prints_both_views_of_each_measure_largest_first() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "profile_model.py"), "--tiny", "--threads", "1", "--top", "4"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    records = [json.loads(line) for line in finished.stdout.splitlines()]
    assert [(r["measure"], r["view"]) for r in records] == [
        ("train", "operators"), ("train", "python"), ("beam10", "operators"), ("beam10", "python"),
    ]  # fmt: skip
    for record in records:
        shares = [entry["share"] for entry in record["top"]]
        assert len(shares) == 4 and shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1
    assert any(entry["operator"].startswith("aten::") for entry in records[0]["top"])


def test_an_unknown_measure_is_one_line_naming_the_choices() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "profile_model.py"), "--measures", "greedy"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2 and "expected some of train,beam10" in finished.stderr
    assert "Traceback" not in finished.stderr
