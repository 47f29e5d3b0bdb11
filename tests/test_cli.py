import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asr.cli import main
from asr.features import NormStats
from tests.conftest import LIBRISPEECH


def run_asr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_sub_command_with_a_line_each() -> None:
    result = run_asr("--help")
    assert result.returncode == 0
    for command in ("prepare", "stats", "train", "average", "evaluate", "synthesize", "transcribe", "align"):
        assert any(line.split()[:1] == [command] and len(line.split()) > 1 for line in result.stdout.splitlines())


def test_a_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = run_asr("prepare", "tsv", str(tmp_path / "missing.tsv"), "--out", str(tmp_path / "out.jsonl"))
    assert result.returncode == 1
    assert result.stderr == f"asr: error: {tmp_path / 'missing.tsv'}: no such file\n"


def test_prepare_then_stats_on_the_fixture(tmp_path: Path, capsys) -> None:
    out = tmp_path / "manifests"
    assert (
        main(
            ["prepare", "librispeech", str(LIBRISPEECH.parent), "--subsets", "dev-clean,test-clean", "--out", str(out)]
        )
        == 0
    )
    assert "4 utterances" in capsys.readouterr().out
    assert main(["stats", str(out / "dev-clean.jsonl"), "--out", str(tmp_path / "cmvn.json"), "--jobs", "1"]) == 0
    stats = NormStats.load(tmp_path / "cmvn.json")
    assert len(stats.mean) == 80 and stats.frames > 500


def bad_manifest(tmp_path: Path) -> Path:
    """A manifest whose second utterance's audio is a text file."""
    good = LIBRISPEECH / "test-clean" / "1003" / "2003" / "1003-2003-0000.flac"
    (tmp_path / "fake.flac").write_text("not audio")
    lines = [
        {"id": "a", "audio": str(good), "duration": 1.0, "text": "A"},
        {"id": "b", "audio": "fake.flac", "duration": 1.0, "text": "B"},
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp_path / "m.jsonl"


@pytest.mark.parametrize(
    ("make_args", "problem"),
    [
        (
            lambda t: ["prepare", "librispeech", str(t / "nowhere"), "--subsets", "dev-clean", "--out", str(t)],
            "nowhere: no such folder",
        ),
        (
            lambda t: ["prepare", "librispeech", str(LIBRISPEECH), "--subsets", "dev-other", "--out", str(t)],
            "subset 'dev-other' not found",
        ),
        (lambda t: ["stats", str(t / "none.jsonl"), "--out", str(t / "out.json")], "none.jsonl: no such file"),
        (
            lambda t: ["stats", str(bad_manifest(t)), "--out", str(t / "out.json"), "--jobs", "1"],
            "fake.flac: not a readable audio file",
        ),
    ],
)
def test_bad_input_gives_one_line_and_exit_1_and_writes_nothing(tmp_path: Path, capsys, make_args, problem) -> None:
    args = make_args(tmp_path)
    before = set(tmp_path.rglob("*"))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("asr: error: ") and problem in err and err.count("\n") == 1
    assert set(tmp_path.rglob("*")) == before  # no output, no temporary file left behind


def test_a_failed_run_leaves_an_existing_output_untouched(tmp_path: Path, capsys) -> None:
    (tmp_path / "out.json").write_text("previous")
    assert main(["stats", str(bad_manifest(tmp_path)), "--out", str(tmp_path / "out.json"), "--jobs", "1"]) == 1
    assert (tmp_path / "out.json").read_text() == "previous"


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["prepare", "tsv", "x.tsv", "--out", "y.jsonl", "--jobs", "0"])
    assert caught.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_prepare_librispeech_with_a_copied_tree(tmp_path: Path, capsys) -> None:
    """The command reads a tree at any path, not only the committed one."""
    shutil.copytree(LIBRISPEECH / "test-clean", tmp_path / "corpus" / "test-clean")
    assert (
        main(["prepare", "librispeech", str(tmp_path / "corpus"), "--subsets", "test-clean", "--out", str(tmp_path)])
        == 0
    )
    assert len((tmp_path / "test-clean.jsonl").read_text().splitlines()) == 2


def test_synthesize_reports_a_bad_engine_in_one_line(tmp_path: Path, capsys) -> None:
    assert main(["synthesize", "--out", str(tmp_path / "corpus"), "--engines", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("asr: error: ") and "engines must be some of" in err and err.count("\n") == 1


def test_synthesize_names_a_missing_exclude_manifest_in_one_line(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "test.jsonl"
    assert main(["synthesize", "--out", str(tmp_path / "corpus"), "--exclude", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("asr: error: ") and str(missing) in err and err.count("\n") == 1
    assert not (tmp_path / "corpus").exists()
