import json
import shutil
from pathlib import Path

import pytest

from asr.cli import main
from asr.data.manifest import ManifestError
from asr.data.prepare import PrepareConfig, prepare_commonvoice
from asr.text import TextConfig
from tests.conftest import FIXTURES

COMMONVOICE = FIXTURES / "commonvoice"
GERMAN = COMMONVOICE / "cv-corpus-test" / "de"


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture()
def release(tmp_path: Path) -> Path:
    """A writable copy of the fixture: tmp/cv-corpus-test/de/..."""
    shutil.copytree(COMMONVOICE / "cv-corpus-test", tmp_path / "cv-corpus-test")
    return tmp_path


@pytest.mark.parametrize("root", [COMMONVOICE, COMMONVOICE / "cv-corpus-test", GERMAN])
def test_prepare_commonvoice_writes_one_manifest_per_split_from_any_level_of_the_release(
    tmp_path: Path, root: Path
) -> None:
    reports = prepare_commonvoice(
        root, ["train", "dev", "test"], tmp_path, PrepareConfig(jobs=2, text=TextConfig("unicode"))
    )
    assert [(r.manifest.name, r.utterances, r.skipped) for r in reports] == [
        ("train.jsonl", 4, {}),
        ("dev.jsonl", 2, {}),
        ("test.jsonl", 2, {}),
    ]
    first = read_lines(tmp_path / "train.jsonl")[0]
    assert first["id"] == "common_voice_de_17298952"
    assert first["audio"] == str(GERMAN / "clips" / "common_voice_de_17298952.mp3")
    assert first["duration"] == 1.5  # from the MP3's header
    assert len(first["speaker"]) == 128  # the client_id, a SHA-512 in hex


def test_the_german_sentences_are_kept_as_written_quotes_included(tmp_path: Path) -> None:
    prepare_commonvoice(GERMAN, ["train", "validated"], tmp_path)
    texts = {line["id"]: line["text"] for line in read_lines(tmp_path / "train.jsonl")}
    assert texts["common_voice_de_17298952"] == "Die Straße ist nass."
    assert texts["common_voice_de_17298953"] == '"Guten Morgen", sagte der Bäcker.'  # a table without quoting
    assert texts["common_voice_de_18102215"] == "Über den Fluss führt eine Brücke."
    validated = read_lines(tmp_path / "validated.jsonl")
    assert len(validated) == 9 and len({line["speaker"] for line in validated}) == 5


def test_speakers_are_the_client_ids(tmp_path: Path) -> None:
    prepare_commonvoice(GERMAN, ["train"], tmp_path)
    lines = read_lines(tmp_path / "train.jsonl")
    table = (GERMAN / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert [line["speaker"] for line in lines] == [row.split("\t")[0] for row in table]
    assert len({line["speaker"] for line in lines}) == 2


def test_columns_are_read_by_name_as_older_releases_order_them(release: Path, tmp_path: Path) -> None:
    german = release / "cv-corpus-test" / "de"
    (german / "dev.tsv").write_text(
        "path\tsentence\tup_votes\tclient_id\n"
        "common_voice_de_19020031.mp3\tDie Bäume sind grün.\t2\tabc\n"
        "common_voice_de_19020032.mp3\tDer Junge heißt Jörg.\t3\tdef\n",
        encoding="utf-8",
    )
    (report,) = prepare_commonvoice(release, ["dev"], tmp_path / "out")
    lines = read_lines(tmp_path / "out" / "dev.jsonl")
    assert report.utterances == 2 and [(line["speaker"], line["text"]) for line in lines] == [
        ("abc", "Die Bäume sind grün."),
        ("def", "Der Junge heißt Jörg."),
    ]


def test_broken_rows_are_counted_and_skipped(release: Path, tmp_path: Path) -> None:
    table = release / "cv-corpus-test" / "de" / "train.tsv"
    rows = table.read_text(encoding="utf-8").splitlines()
    fields = rows[1].split("\t")
    fields[1] = "common_voice_de_1.mp3"
    missing = "\t".join(fields)
    fields[1], fields[3] = "common_voice_de_17298952.mp3", ""
    without_sentence = "\t".join(fields)
    table.write_text("\n".join([*rows, missing, without_sentence, "a\tb\tc", "", rows[2]]) + "\n", encoding="utf-8")
    (report,) = prepare_commonvoice(release, ["train"], tmp_path / "out")
    assert report.utterances == 4
    assert report.skipped == {"missing audio": 1, "no sentence": 1, "malformed row": 1, "clip listed again": 1}


def test_the_command_prepares_with_the_unicode_normaliser_unless_told_otherwise(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert main(["prepare", "commonvoice", str(COMMONVOICE), "--out", str(out), "--splits", "dev,test"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{out / 'dev.jsonl'}: 2 utterances, 3.0 s", f"{out / 'test.jsonl'}: 2 utterances, 3.0 s"]
    configs = []
    monkeypatch.setattr("asr.data.prepare.prepare_commonvoice", lambda *args, **kwargs: configs.append(args[3]) or [])
    for normalizer in ([], ["--normalizer", "english"]):
        assert main(["prepare", "commonvoice", str(COMMONVOICE), "--out", str(out), *normalizer]) == 0
    assert [config.text for config in configs] == [TextConfig("unicode"), TextConfig("english")]


def test_a_missing_folder_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["prepare", "commonvoice", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"asr: error: {tmp_path / 'nowhere'}: no such folder\n"
    with pytest.raises(ManifestError, match=r"no Common Voice language folder \(cv-corpus-\*/<lang>/ holding clips/"):
        prepare_commonvoice(tmp_path, ["train"], tmp_path / "out")


def test_a_missing_table_is_named(release: Path, tmp_path: Path) -> None:
    (release / "cv-corpus-test" / "de" / "dev.tsv").unlink()
    with pytest.raises(ManifestError, match=r"de: no dev.tsv; a Common Voice language folder holds one table a split"):
        prepare_commonvoice(release, ["train", "dev"], tmp_path / "out")
    assert not (tmp_path / "out" / "train.jsonl").exists()  # nothing written before the check


def test_an_unknown_split_names_the_splits(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"unknown Common Voice split 'training'; the splits are train, dev, test"):
        prepare_commonvoice(COMMONVOICE, ["training"], tmp_path)


def test_a_table_without_a_needed_column_says_which(release: Path, tmp_path: Path) -> None:
    (release / "cv-corpus-test" / "de" / "dev.tsv").write_text("client_id\tpath\ttext\nabc\tx.mp3\tHallo\n")
    with pytest.raises(ManifestError, match=r"dev.tsv: no 'sentence' column in the header"):
        prepare_commonvoice(release, ["dev"], tmp_path / "out")


def test_several_languages_need_language_to_choose(release: Path, tmp_path: Path) -> None:
    shutil.copytree(release / "cv-corpus-test" / "de", release / "cv-corpus-test" / "fr")
    with pytest.raises(ManifestError, match=r"several Common Voice languages \(de, fr\); choose one with --language"):
        prepare_commonvoice(release, ["dev"], tmp_path / "out")
    (report,) = prepare_commonvoice(release, ["dev"], tmp_path / "out", language="fr")
    assert report.utterances == 2 and "/fr/clips/" in read_lines(tmp_path / "out" / "dev.jsonl")[0]["audio"]
    with pytest.raises(ManifestError, match=r"no Common Voice folder of language 'cy' \(found: de, fr\)"):
        prepare_commonvoice(release, ["dev"], tmp_path / "out", language="cy")


def test_the_command_chooses_the_language(release: Path, tmp_path: Path, capsys) -> None:
    shutil.copytree(release / "cv-corpus-test" / "de", release / "cv-corpus-test" / "fr")
    args = ["prepare", "commonvoice", str(release), "--out", str(tmp_path / "out"), "--splits", "dev"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("asr: error: ") and "choose one with --language" in err and err.count("\n") == 1
    assert main([*args, "--language", "de"]) == 0
