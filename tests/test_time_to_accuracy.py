"""benchmarks/time_to_accuracy: the manifest-to-CSV converter SpeechBrain reads, and the report's
curves, crossing times and table (the SpeechBrain driver itself needs the peers' environment)."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import LIBRISPEECH

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "benchmarks" / "time_to_accuracy"
AUDIO = LIBRISPEECH / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FOLDER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def _convert(*args: object) -> subprocess.CompletedProcess:
    command = [sys.executable, str(FOLDER / "manifest_csv.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_csv_holds_each_utterance_with_our_normalised_transcript(tmp_path: Path) -> None:
    records = [
        {"id": "a-1", "audio": str(AUDIO), "duration": 1.8, "text": "Hello, world: it's café time!", "speaker": "a"},
        {"id": "b-1", "audio": str(AUDIO), "duration": 1.8, "text": "second one"},
    ]
    finished = _convert(_manifest(tmp_path / "m.jsonl", records), tmp_path / "m.csv")
    assert finished.returncode == 0, finished.stderr
    with open(tmp_path / "m.csv", newline="") as lines:
        rows = list(csv.DictReader(lines))
    assert rows == [
        {"ID": "a-1", "duration": "1.8000", "wav": str(AUDIO), "spk_id": "a", "wrd": "HELLO WORLD IT'S CAFE TIME"},
        {"ID": "b-1", "duration": "1.8000", "wav": str(AUDIO), "spk_id": "b-1", "wrd": "SECOND ONE"},
    ]
    assert _convert(tmp_path / "m.jsonl", tmp_path / "one.csv", "--limit", 1).returncode == 0
    assert len((tmp_path / "one.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "c", "audio": str(AUDIO), "duration": 1.0, "text": "cut", "start": 0.2, "end": 1.2}, "c is a cut"),
        ({"id": "d", "audio": str(AUDIO), "duration": 1.0, "text": "123 !"}, "d has no character to score"),
    ],
)
def test_what_the_csv_cannot_hold_is_one_line_and_no_file(tmp_path: Path, record: dict, message: str) -> None:
    finished = _convert(_manifest(tmp_path / "m.jsonl", [record]), tmp_path / "m.csv")
    assert finished.returncode == 1 and message in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.csv").exists()


def test_our_curve_is_read_from_tensorboard_in_minutes_since_the_start(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    report = _module("report")
    writer = SummaryWriter(str(tmp_path / "ours" / "tensorboard"))
    for step, (wer, wall) in enumerate([(90.0, 1060.0), (40.0, 1120.0)], start=1):
        writer.add_scalar("dev/wer", wer, step, walltime=wall)
        writer.add_scalar("dev/cer", wer / 2, step, walltime=wall)
    writer.close()
    (tmp_path / "ours.started").write_text("1000.0\n")
    curve = report.our_curve(tmp_path)
    assert [(p["step"], p["minutes"], p["dev_wer"], p["dev_cer"]) for p in curve] == [
        (1, 1.0, 90.0, 45.0),
        (2, 2.0, 40.0, 20.0),
    ]


def test_the_crossing_time_is_the_first_validation_at_or_under_the_wer() -> None:
    report = _module("report")
    curve = [{"minutes": 3.0, "dev_wer": 100.0}, {"minutes": 6.0, "dev_wer": 50.0}, {"minutes": 9.0, "dev_wer": 30.0}]
    assert report.minutes_to_reach(curve, 50.0) == 6.0
    assert report.minutes_to_reach(curve, 10.0) is None
    assert report.last_within(curve, 8.0)["dev_wer"] == 50.0
    assert report.last_within(curve, 1.0)["dev_wer"] == 100.0


def test_the_table_has_a_row_per_test_set_every_run_has_and_the_ratio_to_the_chosen_run() -> None:
    report = _module("report")
    row = {"wer": 20.0, "cer": 10.0, "insertion_rate": 1.0}
    results = [
        {"run": "ours", "test": "flite", **row},
        {"run": "librispeech", "test": "flite", **row, "wer": 100.0},
        {"run": "small", "test": "flite", **row, "wer": 40.0},
        {"run": "ours", "test": "test", **row},
    ]
    lines = report.table(results, ["ours", "librispeech", "small"], "small").splitlines()
    assert len(lines) == 3 and lines[1] == "|---|---|---|---|---|"
    assert (
        lines[2] == "| flite's test voice, awb (neither heard flite nor its talker) | 20.00 (10.00, 1.00) "
        "| 100.00 (10.00, 1.00) | 40.00 (10.00, 1.00) | 0.50 |"
    )


def test_our_runs_are_those_started_and_validated_ours_first(tmp_path: Path) -> None:
    report = _module("report")
    for name in ("ours-b", "ours", "ours-unstarted"):
        (tmp_path / name / "eval" / "flite").mkdir(parents=True)
        (tmp_path / name / "validations.json").write_text("[]")
    for name in ("ours-b", "ours", "ours-without-validation"):
        (tmp_path / f"{name}.started").write_text("0\n")
    (tmp_path / "ours" / "eval" / "flite" / "summary.json").write_text("{}")
    assert report.our_runs(tmp_path) == ["ours", "ours-b"]
    assert report.evaluated(tmp_path, "ours") and not report.evaluated(tmp_path, "ours-b")


def test_speechbrain_runs_are_the_folders_with_results_named_by_settings_and_normalisation(tmp_path: Path) -> None:
    report = _module("report")
    for name in ("small", "small-sentence", "librispeech-without-results"):
        (tmp_path / f"speechbrain-{name}").mkdir()
    for name in ("small", "small-sentence"):
        (tmp_path / f"speechbrain-{name}" / "results.jsonl").write_text("")
    assert report.speechbrain_runs(tmp_path) == ["small", "small-sentence"]
    assert report.label("small-sentence") == "SpeechBrain, small-corpus recipe scaled, sentence normalisation"
    assert report.label("ours") == "ours (make demo's config)" and report.label("lr1e-3") == "lr1e-3"
