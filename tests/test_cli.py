import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asr.atomic import atomic_write_text
from asr.checkpoint import save_training_state
from asr.cli import main
from asr.config import dump_config
from asr.data.manifest import read_manifest
from asr.data.prepare import prepare_librispeech
from asr.frontend.normalization import NormStats
from asr.model import LAS, AttentionConfig, LASConfig, ListenerConfig, SpellerConfig
from asr.text import Vocabulary
from asr.training.config import TrainConfig
from tests.conftest import FIXTURES, LIBRISPEECH
from tests.test_checkpoint import tiny_model_dir


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


@pytest.mark.parametrize("stdout", ["a closed pipe", "a full device", "closed"])
def test_output_that_cannot_be_printed_is_one_line_or_a_quiet_stop_not_a_traceback(tmp_path: Path, stdout) -> None:
    """`| head` closes the pipe (stop quietly, status 141 as for SIGPIPE); `> /dev/full` fills up and
    `>&-` leaves no stdout (one line, exit 1: the summary would be lost)."""
    command = [sys.executable, "-m", "asr", "prepare", "librispeech", str(LIBRISPEECH), "--subsets", "test-clean"]
    command += ["--out", str(tmp_path / "out")]
    if stdout == "a closed pipe":
        read, write = os.pipe()
        os.close(read)
        result = subprocess.run(command, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
        os.close(write)
        assert (result.returncode, result.stderr) == (141, "")
        return
    if stdout == "a full device":
        with open("/dev/full", "w") as full:
            result = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        assert (result.returncode, result.stderr) == (1, "asr: error: stdout: no space left on device\n")
        return
    result = subprocess.run(["sh", "-c", '"$@" >&-', "sh", *command], stderr=subprocess.PIPE, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (
        1,
        "asr: error: stdout is closed; redirect it to a file (or /dev/null)\n",
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["prepare tsv", "prepare kaldi", "lm text"])  # stats' loader workers need shm
def test_a_file_size_limit_is_one_line_and_leaves_no_partial_output(tmp_path: Path, command) -> None:
    """A full disk (here `ulimit -f`, the same EFBIG/ENOSPC to the writer) printed a traceback."""
    inputs = command_inputs(tmp_path / "in")
    out = tmp_path / "out" / "file"
    (tmp_path / "out").mkdir()
    args = FILE_OUTPUTS[command].format(**inputs, out=out).split()

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))

    result = subprocess.run(
        [sys.executable, "-m", "asr", *args], capture_output=True, text=True, timeout=120, preexec_fn=small_files
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"asr: error: {out}: file too large; make room and run the command again"
    ), result.stderr
    assert "Traceback" not in result.stderr and list((tmp_path / "out").iterdir()) == []


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


def tiny_experiment(folder: Path) -> Path:
    """An experiment folder with one kept checkpoint of a tiny model, as asr train leaves it."""
    listener = ListenerConfig(layers=1, units=8, reduce=())
    speller = SpellerConfig(embedding_dim=4, units=8)
    config = TrainConfig(model=LASConfig(listener=listener, attention=AttentionConfig(dim=8), speller=speller))
    atomic_write_text(folder / "config.yaml", dump_config(config))  # makes the folder too
    model = LAS(dataclasses.replace(config.model, vocab_size=len(Vocabulary.default())))
    stats = NormStats(mean=(0.0,) * 80, std=(1.0,) * 80, frames=1).to_dict()
    state = {"model": model.state_dict(), "wer": 50.0, "stats": stats, "longest_utterance_seconds": 2.0}
    save_training_state(state, folder / "best", 1, keep=1)
    return folder


def test_average_replaces_a_model_directory_and_nothing_else(tmp_path: Path, capsys) -> None:
    exp = tiny_experiment(tmp_path / "exp")
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    assert main(["average", str(exp), "--out", str(mine)]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"asr: error: {mine}: not a model directory (holds notes.txt, photos)") and err.count("\n") == 1
    )
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "photos"]
    (tmp_path / "file").write_text("keep me")
    assert main(["average", str(exp), "--out", str(tmp_path / "file")]) == 1
    assert capsys.readouterr().err == f"asr: error: {tmp_path / 'file'}: is a file, not a folder; give --out a folder\n"
    assert (tmp_path / "file").read_text() == "keep me"
    for _ in range(2):  # a new folder, then the model directory it now is
        assert main(["average", str(exp), "--out", str(tmp_path / "model")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "file", "mine", "model"]


def test_split_refuses_one_file_for_both_outputs_and_the_input_as_an_output(tmp_path: Path, capsys) -> None:
    prepare_librispeech(LIBRISPEECH.parent, ["dev-clean"], tmp_path)
    manifest = tmp_path / "dev-clean.jsonl"
    before = manifest.read_text()
    split = ["split", str(manifest), "--held-out", "0.5"]
    assert main([*split, "--out-kept", str(tmp_path / "x.jsonl"), "--out-held", str(tmp_path / "." / "x.jsonl")]) == 1
    assert capsys.readouterr().err == (
        f"asr: error: {tmp_path / '.' / 'x.jsonl'}: given to both --out-kept and --out-held; give each its own file\n"
    )
    assert main([*split, "--out-kept", str(manifest), "--out-held", str(tmp_path / "held.jsonl")]) == 1
    assert capsys.readouterr().err == (
        f"asr: error: {manifest}: is an input of this command; give --out-kept another file\n"
    )
    assert manifest.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["dev-clean.jsonl"]


def command_inputs(folder: Path) -> dict[str, Path]:
    """Valid inputs of every command that writes: a manifest, a table, a Kaldi directory, a text, configs
    (with statistics), a tiny model directory."""
    prepare_librispeech(LIBRISPEECH.parent, ["test-clean"], folder)
    manifest = folder / "test-clean.jsonl"
    NormStats(mean=(0.0,) * 80, std=(1.0,) * 80, frames=1).save(folder / "cmvn.json")
    data = {"train": str(manifest), "dev": str(manifest), "stats": str(folder / "cmvn.json")}
    (folder / "train.yaml").write_text(yaml.safe_dump({"data": data}))
    (folder / "lm.yaml").write_text("{}\n")
    (folder / "text.txt").write_text("HELLO WORLD\n")
    audio = read_manifest(manifest)[0].audio
    (folder / "table.tsv").write_text(f"audio\ttext\n{audio}\tHELLO\n")
    (folder / "kaldi").mkdir()
    (folder / "kaldi" / "wav.scp").write_text(f"a {audio}\n")
    (folder / "kaldi" / "text").write_text("a HELLO\n")
    return {"root": folder, "manifest": manifest, "audio": audio, "model": tiny_model_dir(folder / "model")}


FILE_OUTPUTS = {
    "stats": "stats {manifest} --out {out} --jobs 1",
    "prepare tsv": "prepare tsv {root}/table.tsv --out {out}",
    "prepare kaldi": "prepare kaldi {root}/kaldi --out {out}",
    "lm text": "lm text --transcripts {manifest} --out {out}",
    "align": "align {audio} --model {model} --plot {out}",
}
FOLDER_OUTPUTS = {
    "train": "train --config {root}/train.yaml --out {out}",
    "lm train": "lm train --config {root}/lm.yaml --text {root}/text.txt --out {out}",
    "evaluate": "evaluate --model {model} --manifest {manifest} --out {out} --jobs 0",
    "synthesize": "synthesize --out {out} --train-utterances 1 --dev-utterances 0 --test-utterances 0",
    "prepare librispeech": f"prepare librispeech {LIBRISPEECH} --subsets test-clean --out {{out}}",
    "prepare commonvoice": f"prepare commonvoice {FIXTURES / 'commonvoice' / 'cv-corpus-test' / 'de'} --out {{out}}",
    "prepare aishell": f"prepare aishell {FIXTURES / 'aishell'} --out {{out}}",
}


@pytest.mark.parametrize("command", [*FILE_OUTPUTS, *FOLDER_OUTPUTS])
def test_an_output_path_that_cannot_be_written_is_one_line_before_any_work(tmp_path: Path, capsys, command) -> None:
    inputs = command_inputs(tmp_path / "in")
    wants_file = command in FILE_OUTPUTS
    wrong = tmp_path / "wrong"
    wrong.mkdir() if wants_file else wrong.write_text("keep me")
    option = "--plot" if command == "align" else "--out"
    problem = (
        f"is a folder; give {option} a file name" if wants_file else "is a file, not a folder; give --out a folder"
    )
    unwritable = Path("/proc/asr-test/out")
    before = sorted(tmp_path.rglob("*"))
    for out, expected in ((wrong, problem), (unwritable, "cannot be written (/proc: no such file or directory)")):
        args = {**FILE_OUTPUTS, **FOLDER_OUTPUTS}[command].format(**inputs, out=out).split()
        assert main(args) == 1
        assert capsys.readouterr().err == f"asr: error: {out}: {expected}\n"
    assert sorted(tmp_path.rglob("*")) == before and (wants_file or wrong.read_text() == "keep me")


@pytest.mark.parametrize("command", [c for c in FILE_OUTPUTS if c != "align"])
def test_no_output_is_written_over_audio_that_an_input_lists(tmp_path: Path, capsys, command) -> None:
    """The recording a manifest, table or wav.scp names is read by the command (or by what uses its
    output): `--out` naming it is one line, exit 1, the recording untouched."""
    inputs = command_inputs(tmp_path / "in")
    audio = tmp_path / "in" / "a.flac"
    shutil.copy(inputs["audio"], audio)
    for listed in (inputs["manifest"], tmp_path / "in" / "table.tsv", tmp_path / "in" / "kaldi" / "wav.scp"):
        listed.write_text(listed.read_text().replace(str(inputs["audio"]), str(audio)))
    before = audio.read_bytes()
    link = tmp_path / "link.flac"
    link.symlink_to(audio)
    for out in (audio, link):
        assert main(FILE_OUTPUTS[command].format(**inputs, out=out).split()) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"asr: error: {out}: is audio that ") and err.count("\n") == 1, err
    assert audio.read_bytes() == before and link.is_symlink()


def test_evaluate_scores_each_speaker_group_and_refuses_a_speaker_in_two(tmp_path: Path, capsys) -> None:
    inputs = command_inputs(tmp_path / "in")
    speaker = read_manifest(inputs["manifest"])[0].speaker
    (tmp_path / "groups").write_text(f"{speaker} children\nnobody adults\n")
    args = ["evaluate", "--model", str(inputs["model"]), "--manifest", str(inputs["manifest"]), "--jobs", "0"]
    assert main([*args, "--out", str(tmp_path / "eval"), "--groups", str(tmp_path / "groups")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert list(summary["groups"]) == ["children"] and summary["groups"]["children"]["words"] == summary["words"]
    (tmp_path / "groups").write_text(f"{speaker} children\n{speaker} adults\n")
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "again"), "--groups", str(tmp_path / "groups")]) == 1
    assert capsys.readouterr().err == (
        f"asr: error: {tmp_path / 'groups'}:2: speaker {speaker} is in group 'children' already, not 'adults'\n"
    )
    assert not (tmp_path / "again").exists()
