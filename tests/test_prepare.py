import json
import shutil
from pathlib import Path

import pytest
import soundfile

from asr.data import ManifestError
from asr.prepare import prepare_librispeech, prepare_tsv
from tests.conftest import LIBRISPEECH


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("root", ["parent", "LibriSpeech"])
def test_prepare_librispeech_writes_one_manifest_per_subset(corpus: Path, tmp_path: Path, root: str) -> None:
    top = corpus if root == "parent" else corpus / "LibriSpeech"
    reports = prepare_librispeech(top, ["dev-clean", "test-clean"], tmp_path / "out", jobs=2)
    assert [r.utterances for r in reports] == [4, 2] and all(not r.skipped for r in reports)
    lines = read_lines(tmp_path / "out" / "dev-clean.jsonl")
    assert [line["id"] for line in lines] == ["1001-2001-0000", "1001-2001-0001", "1002-2002-0000", "1002-2002-0001"]
    first = lines[0]
    assert first["text"] == "THE CAT SAT ON THE MAT" and first["speaker"] == "1001"
    audio = Path(first["audio"])
    assert audio == corpus / "LibriSpeech" / "dev-clean" / "1001" / "2001" / "1001-2001-0000.flac"
    assert first["duration"] == pytest.approx(soundfile.info(audio).duration, abs=1e-4)
    assert reports[0].seconds == pytest.approx(sum(line["duration"] for line in lines), abs=1e-3)


def test_prepare_librispeech_counts_and_skips_broken_items(corpus: Path, tmp_path: Path) -> None:
    chapter = corpus / "LibriSpeech" / "dev-clean" / "1001" / "2001"
    transcript = chapter / "1001-2001.trans.txt"
    transcript.write_text(
        transcript.read_text() + "1001-2001-0007 LISTED BUT NOT RECORDED\nnot-an-id SOME TEXT\n1001-2001-0008\n"
    )
    (chapter / "1001-2001-0001.flac").write_bytes(b"garbage, not flac")
    shutil.copy(chapter / "1001-2001-0000.flac", chapter / "1001-2001-0009.flac")  # no transcript line
    (report,) = prepare_librispeech(corpus, ["dev-clean"], tmp_path / "out", jobs=2)
    assert report.skipped == {
        "missing audio": 1,
        "malformed transcript line": 2,
        "unreadable audio": 1,
        "no transcript": 1,
    }
    assert report.utterances == 3
    assert "skipped 5" in report.summary()


def test_a_missing_subset_names_the_folders_searched(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="subset 'train-clean-100' not found: looked in") as caught:
        prepare_librispeech(corpus, ["dev-clean", "train-clean-100"], tmp_path / "out")
    assert str(corpus / "LibriSpeech" / "train-clean-100") in str(caught.value)
    assert not (tmp_path / "out" / "dev-clean.jsonl").exists()  # nothing written before the check


def test_prepare_tsv_reads_fsdd_as_it_is(fsdd: Path, tmp_path: Path) -> None:
    report = prepare_tsv(fsdd / "transcripts.tsv", tmp_path / "fsdd.jsonl", jobs=2)
    lines = read_lines(tmp_path / "fsdd.jsonl")
    assert report.utterances == len(lines) == 3000 and not report.skipped
    by_id = {line["id"]: line for line in lines}
    assert by_id["0_jackson_0"]["text"] == "zero" and by_id["0_jackson_0"]["speaker"] == "jackson"
    assert Path(by_id["0_jackson_0"]["audio"]) == fsdd / "recordings" / "0_jackson_0.wav"


def make_table(folder: Path, header: str, rows: list[str]) -> Path:
    (folder / "clips").mkdir(exist_ok=True)
    for name in ("a", "b"):
        shutil.copy(
            LIBRISPEECH / "test-clean" / "1003" / "2003" / "1003-2003-0000.flac", folder / "clips" / f"{name}.flac"
        )
    table = folder / "table.tsv"
    table.write_text("\n".join([header, *rows]) + "\n")
    return table


def test_prepare_tsv_takes_relative_paths_and_ignores_other_columns(tmp_path: Path) -> None:
    table = make_table(
        tmp_path,
        "notes\tpath\ttext",
        [
            "x\tclips/a.flac\tOpen the door",
            "y\tclips/b.flac\tplease",
            "z\tclips/none.flac\tgone",
            "bad row",
            "w\tclips/a.flac\t",
        ],
    )
    report = prepare_tsv(table, tmp_path / "out.jsonl")
    assert report.skipped == {"missing audio": 1, "malformed row": 1, "empty text": 1}
    assert [line["id"] for line in read_lines(tmp_path / "out.jsonl")] == ["a", "b"]


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("file\tsentence", "no 'text' column"),
        ("name\ttext", "no audio column; the header needs one of audio, path, file"),
    ],
)
def test_prepare_tsv_rejects_a_table_without_the_needed_columns(tmp_path: Path, header: str, problem: str) -> None:
    table = make_table(tmp_path, header, ["clips/a.flac\thello"])
    with pytest.raises(ManifestError, match=problem):
        prepare_tsv(table, tmp_path / "out.jsonl")
