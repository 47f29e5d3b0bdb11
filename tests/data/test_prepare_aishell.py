import json
import logging
import shutil
import tarfile
from pathlib import Path

import pytest

from asr.cli import main
from asr.data.manifest import ManifestError
from asr.data.prepare import PrepareConfig, prepare_aishell
from asr.text import TextConfig
from tests.conftest import FIXTURES

AISHELL = FIXTURES / "aishell"
DATA_AISHELL = AISHELL / "data_aishell"
SPLITS = ("train", "dev", "test")


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """A writable copy of the fixture: tmp/data_aishell/..."""
    shutil.copytree(DATA_AISHELL, tmp_path / "data_aishell")
    return tmp_path / "data_aishell"


@pytest.mark.parametrize("root", [AISHELL, DATA_AISHELL])
def test_prepare_aishell_writes_one_manifest_per_split_from_data_aishell_or_its_parent(
    tmp_path: Path, root: Path
) -> None:
    reports = prepare_aishell(root, SPLITS, tmp_path, PrepareConfig(jobs=2, text=TextConfig("unicode", spaces=False)))
    assert [(r.manifest.name, r.utterances) for r in reports] == [
        ("train.jsonl", 4),
        ("dev.jsonl", 2),
        ("test.jsonl", 2),
    ]
    first = read_lines(tmp_path / "train.jsonl")[0]
    assert first == {
        "id": "BAC009S0002W0122",
        "audio": str(DATA_AISHELL / "wav" / "train" / "S0002" / "BAC009S0002W0122.wav"),
        "duration": 0.7,
        "text": "而 对 楼市 成交 抑制 作用 最 大 的 限 购",  # as the transcript writes it, words apart
        "speaker": "S0002",
    }


def test_speakers_are_the_folders_of_each_split(tmp_path: Path) -> None:
    prepare_aishell(AISHELL, SPLITS, tmp_path)
    speakers = {split: {line["speaker"] for line in read_lines(tmp_path / f"{split}.jsonl")} for split in SPLITS}
    assert speakers == {"train": {"S0002", "S0003"}, "dev": {"S0724"}, "test": {"S0764"}}


def test_audio_without_a_line_and_a_line_without_audio_are_counted_in_their_split(tmp_path: Path) -> None:
    train, dev, test = prepare_aishell(AISHELL, SPLITS, tmp_path)
    assert train.skipped == {"no transcript": 1, "missing audio": 1}  # S0003W0123.wav, the line of S0002W0125
    assert not dev.skipped and not test.skipped
    assert "BAC009S0003W0123" not in {line["id"] for line in read_lines(tmp_path / "train.jsonl")}


def test_a_line_without_text_is_counted_and_lines_of_no_split_are_logged(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    transcript = corpus / "transcript" / "aishell_transcript_v0.8.txt"
    lines = transcript.read_text(encoding="utf-8").splitlines()
    lines[0] = "BAC009S0002W0122"  # its text gone
    lines += ["not-an-id 你好", lines[1], "BAC009S0999W0001 没有 说话人 的 目录"]  # a repeated line, an unknown speaker
    transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="asr.data.prepare.aishell"):
        (train,) = prepare_aishell(corpus, ["train"], tmp_path / "out")
    assert train.skipped == {"empty text": 1, "no transcript": 1, "missing audio": 1}
    warnings = [r.getMessage() for r in caplog.records if r.name == "asr.data.prepare.aishell"]
    assert len(warnings) == 2
    assert "2 lines skipped: not a new AISHELL id (BAC009S####W####) first, e.g. line 10: 'not-an-id" in warnings[0]
    assert "1 lines skipped: 1 speakers have no folder under" in warnings[1] and "(e.g. S0999)" in warnings[1]


def test_a_missing_folder_or_transcript_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["prepare", "aishell", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"asr: error: {tmp_path / 'nowhere'}: no such folder\n"
    with pytest.raises(
        ManifestError, match=r"no transcript/aishell_transcript_v0.8.txt; looked in .* \(data_aishell or"
    ):
        prepare_aishell(tmp_path, ["train"], tmp_path / "out")


def test_an_unknown_split_names_the_splits(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"unknown AISHELL split 'eval'; the splits are train, dev, test"):
        prepare_aishell(AISHELL, ["train", "eval"], tmp_path)


def test_speaker_archives_not_yet_extracted_are_named(corpus: Path, tmp_path: Path) -> None:
    """The download ships wav/S####.tar.gz; prepare needs them extracted into wav/<split>/S####/."""
    for split in ("dev", "test"):
        for speaker in (corpus / "wav" / split).iterdir():
            with tarfile.open(corpus / "wav" / f"{speaker.name}.tar.gz", "w:gz") as archive:
                archive.add(speaker, arcname=f"{split}/{speaker.name}")
        shutil.rmtree(corpus / "wav" / split)
    with pytest.raises(ManifestError) as caught:
        prepare_aishell(corpus, ["train", "dev"], tmp_path / "out")
    assert str(caught.value) == (
        f"split 'dev' not found: no {corpus / 'wav' / 'dev'}; "
        "extract the 2 wav/*.tar.gz first (recipes/aishell/run.sh stage 1 does)"
    )
    assert not (tmp_path / "out").exists()  # nothing written before the check


def test_the_command_prepares_with_unicode_without_spaces_unless_told_otherwise(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert main(["prepare", "aishell", str(AISHELL), "--out", str(out), "--splits", "dev"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{out / 'dev.jsonl'}: 2 utterances, 1.4 s"]
    configs = []
    monkeypatch.setattr("asr.data.prepare.prepare_aishell", lambda *args, **kwargs: configs.append(args[3]) or [])
    for options in ([], ["--normalizer", "none"], ["--normalizer", "english"], ["--no-spaces"]):
        assert main(["prepare", "aishell", str(AISHELL), "--out", str(out), *options]) == 0
    assert [config.text for config in configs] == [
        TextConfig("unicode", spaces=False),
        TextConfig("none"),
        TextConfig("english"),
        TextConfig("unicode", spaces=False),
    ]
