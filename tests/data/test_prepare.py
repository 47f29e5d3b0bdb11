import errno
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import soundfile

from asr.cli import main
from asr.data.manifest import ManifestError, read_manifest
from asr.data.prepare import PrepareConfig, prepare_kaldi, prepare_librispeech, prepare_tsv
from asr.frontend.audio import audio_blocks
from tests.conftest import LIBRISPEECH


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("root", ["parent", "LibriSpeech"])
def test_prepare_librispeech_writes_one_manifest_per_subset(corpus: Path, tmp_path: Path, root: str) -> None:
    top = corpus if root == "parent" else corpus / "LibriSpeech"
    reports = prepare_librispeech(top, ["dev-clean", "test-clean"], tmp_path / "out", PrepareConfig(jobs=2))
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
    (report,) = prepare_librispeech(corpus, ["dev-clean"], tmp_path / "out", PrepareConfig(jobs=2))
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
    report = prepare_tsv(fsdd / "transcripts.tsv", tmp_path / "fsdd.jsonl", PrepareConfig(jobs=2))
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


SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


CLIP = LIBRISPEECH / "test-clean" / "1003" / "2003" / "1003-2003-0000.flac"


def copy_clip(destination: Path, source: Path = CLIP) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, destination)
    return destination


def test_prepare_tsv_gives_files_outside_the_table_folder_that_share_a_name_distinct_safe_ids(tmp_path: Path) -> None:
    first, second = copy_clip(tmp_path / "x" / "a.flac"), copy_clip(tmp_path / "y" / "a.flac")
    table = tmp_path / "tables" / "table.tsv"
    table.parent.mkdir()
    table.write_text(f"path\ttext\n{first}\tONE\n{second}\tTWO\n")
    report = prepare_tsv(table, tmp_path / "out.jsonl")
    ids = {line["audio"]: line["id"] for line in read_lines(tmp_path / "out.jsonl")}
    assert report.utterances == 2 and len(set(ids.values())) == 2
    assert all(SAFE_ID.fullmatch(i) and i.startswith("a-") for i in ids.values())


def test_prepare_tsv_ids_of_paths_above_the_table_folder_are_safe(tmp_path: Path) -> None:
    copy_clip(tmp_path / "other" / "a.flac")
    copy_clip(tmp_path / "corpus" / "clips" / "a.flac")
    copy_clip(tmp_path / "corpus" / "clips" / ".my clip (1).flac")
    table = tmp_path / "corpus" / "table.tsv"
    table.write_text("path\ttext\n../other/a.flac\tONE\nclips/a.flac\tTWO\nclips/.my clip (1).flac\tTHREE\n")
    prepare_tsv(table, tmp_path / "out.jsonl")
    lines = {line["text"]: line for line in read_lines(tmp_path / "out.jsonl")}
    assert lines["TWO"]["id"] == "clips-a" and lines["THREE"]["id"] == "my_clip_1_"
    assert lines["ONE"]["id"].startswith("a-") and lines["ONE"]["audio"] == str(tmp_path / "other" / "a.flac")
    assert all(SAFE_ID.fullmatch(line["id"]) for line in lines.values())


def test_prepare_tsv_with_only_a_header_row_is_an_error(tmp_path: Path) -> None:
    table = make_table(tmp_path, "path\ttext", ["", "\t"])
    with pytest.raises(ManifestError, match=r"table.tsv:1: a header row and nothing below it"):
        prepare_tsv(table, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_table_where_every_row_is_skipped_writes_nothing(tmp_path: Path) -> None:
    table = make_table(tmp_path, "path\ttext", ["clips/none.flac\tgone"])
    with pytest.raises(ManifestError, match=r"no usable utterances \(skipped 1 \(missing audio: 1\)\)"):
        prepare_tsv(table, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_an_unreadable_table_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = make_table(tmp_path, "path\ttext", ["clips/a.flac\tONE"])
    read_bytes = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if path == table:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ManifestError) as caught:
        prepare_tsv(table, tmp_path / "out.jsonl")
    assert str(caught.value) == f"{table}: permission denied"


def truncate(path: Path) -> None:
    """Cut a FLAC file in half: its header stays valid, its frames end early."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("verify", [False, True])
def test_verify_decodes_every_file_and_skips_a_truncated_flac(corpus: Path, tmp_path: Path, verify: bool) -> None:
    truncate(corpus / "LibriSpeech" / "dev-clean" / "1001" / "2001" / "1001-2001-0001.flac")
    (report,) = prepare_librispeech(corpus, ["dev-clean"], tmp_path / "out", PrepareConfig(jobs=2, verify=verify))
    if verify:
        assert report.utterances == 3 and report.skipped == {"undecodable audio": 1}
        assert "undecodable audio: 1" in report.summary()
    else:
        assert report.utterances == 4 and not report.skipped  # the header alone looks fine


def noisy_table(folder: Path) -> Path:
    """Clips 0..4 whose transcripts hold digits, a symbol, Cyrillic letters, only an emoji, a glued number."""
    texts = ["I have 42 cats", "caf\u00e9 \u2615 time", "\u041f\u0440\u0438\u0432\u0435\u0442 world", "\U0001f600"]
    texts.append("room 3D")
    for i in range(len(texts)):
        copy_clip(folder / "clips" / f"{i}.flac")
    table = folder / "table.tsv"
    table.write_text("path\ttext\n" + "".join(f"clips/{i}.flac\t{text}\n" for i, text in enumerate(texts)))
    return table


def test_transcripts_that_normalisation_spoils_are_counted_by_kind(tmp_path: Path) -> None:
    report = prepare_tsv(noisy_table(tmp_path), tmp_path / "out.jsonl")
    assert report.skipped == {"text empty once normalised": 1}  # the emoji alone
    digits, letters, symbols = report.notes
    assert digits.startswith("transcripts holding digits: 2 ('4' x1, '2' x1, '3' x1; e.g. '4' in 0: 'I have 42 cats')")
    assert digits.endswith("--expand-numbers writes them as words")
    assert letters.startswith("transcripts holding letters outside A-Z: 1 (") and "e.g. '\u041f' in 2" in letters
    assert symbols.startswith("transcripts holding symbols: 2 (") and "e.g. '\u2615' in 1" in symbols


def test_expand_numbers_writes_digits_as_words(tmp_path: Path) -> None:
    report = prepare_tsv(noisy_table(tmp_path), tmp_path / "out.jsonl", PrepareConfig(expand_numbers=True))
    texts = {line["id"]: line["text"] for line in read_lines(tmp_path / "out.jsonl")}
    assert texts["0"] == "I have forty-two cats" and texts["4"] == "room 3D"
    assert report.notes[0].startswith("transcripts still holding digits: 1 ('3' x1; e.g. '3' in 4: 'room 3D')")


DEV = LIBRISPEECH / "dev-clean"
RECORDING_SECONDS = 1.83075  # of 1001-2001-0000.flac


def kaldi_dir(root: Path, tables: dict[str, str]) -> Path:
    """root/train/ holding `tables`; root/audio/r1.flac (1.83 s) and r2.flac, the corpus-root layout."""
    copy_clip(root / "audio" / "r1.flac", DEV / "1001" / "2001" / "1001-2001-0000.flac")
    copy_clip(root / "audio" / "r2.flac", DEV / "1002" / "2002" / "1002-2002-0000.flac")
    data_dir = root / "train"
    data_dir.mkdir()
    for name, text in tables.items():
        (data_dir / name).write_text(text)
    return data_dir


def test_prepare_kaldi_without_segments_writes_one_utterance_per_recording(tmp_path: Path) -> None:
    data_dir = kaldi_dir(
        tmp_path,
        {
            "wav.scp": f"u1 audio/r1.flac\nu2 {tmp_path / 'audio' / 'r2.flac'}\nu3 audio/r1.flac\n",
            "text": "u1 THE CAT SAT ON THE MAT\nu2\tSHE SELLS SEA SHELLS\nu4 NOT RECORDED\n",
            "utt2spk": "u1 s1\nu2 s2\nu3 s1\n",
        },
    )
    report = prepare_kaldi(data_dir, tmp_path / "out.jsonl", PrepareConfig(jobs=2))
    assert report.skipped == {"no transcript": 1, "no audio entry": 1}
    first, second = read_lines(tmp_path / "out.jsonl")
    assert first == {
        "id": "u1",
        "audio": str(tmp_path / "audio" / "r1.flac"),
        "duration": round(RECORDING_SECONDS, 4),
        "text": "THE CAT SAT ON THE MAT",
        "speaker": "s1",
    }
    assert second["text"] == "SHE SELLS SEA SHELLS" and second["speaker"] == "s2"
    assert [u.id for u in read_manifest(tmp_path / "out.jsonl")] == ["u1", "u2"]


@pytest.mark.parametrize("base", ["current folder", "parent", "grandparent", "data directory"])
def test_relative_wav_scp_paths_are_found_where_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: str
) -> None:
    data_dir = tmp_path / "recipe" / "data" / "train"
    data_dir.mkdir(parents=True)
    (data_dir / "wav.scp").write_text("u1 clips/x.flac\n")
    (data_dir / "text").write_text("u1 HELLO\n")
    folders = {"current folder": tmp_path / "work", "parent": data_dir.parent, "grandparent": tmp_path / "recipe"}
    folder = folders.get(base, data_dir)
    audio = copy_clip(folder / "clips" / "x.flac")
    (tmp_path / "work").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / "work")
    prepare_kaldi(data_dir, tmp_path / "out.jsonl")
    assert read_lines(tmp_path / "out.jsonl")[0]["audio"] == str(audio)


def test_prepare_kaldi_with_segments_writes_start_and_end(tmp_path: Path) -> None:
    data_dir = kaldi_dir(
        tmp_path,
        {
            "wav.scp": "r1 audio/r1.flac\n",
            "segments": "a r1 0.0 0.9\nb r1 0.9 -1\nc r1 1.0 2.2\nd r1 1.0 2.5\ne r1 1.9 -1\n",
            "text": "".join(f"{u} WORDS OF {u.upper()}\n" for u in "abcde"),
        },
    )
    report = prepare_kaldi(data_dir, tmp_path / "out.jsonl")
    assert report.skipped == {"segment past the recording's end": 2}  # d ends 0.67 s past it, e starts past it
    lines = {line["id"]: line for line in read_lines(tmp_path / "out.jsonl")}
    assert {i: (line["start"], line["end"]) for i, line in lines.items()} == {
        "a": (0.0, 0.9),
        "b": (0.9, round(RECORDING_SECONDS, 4)),
        "c": (1.0, round(RECORDING_SECONDS, 4)),  # 0.37 s past the end: cut back, as Kaldi does
    }
    assert all(line["duration"] == pytest.approx(line["end"] - line["start"], abs=1e-4) for line in lines.values())
    assert report.seconds == pytest.approx(0.9 + (RECORDING_SECONDS - 0.9) + (RECORDING_SECONDS - 1.0))


def test_segments_of_near_zero_length_are_skipped_and_counted(tmp_path: Path) -> None:
    segments = "a r1 0.5 0.5001\nb r1 0.2 1.2\nc r1 1.8 -1\nd r1 0.3 0.35\n"  # c: the last 0.03 s
    tables = {"wav.scp": "r1 audio/r1.flac\n", "segments": segments, "text": "a A\nb B\nc C\nd D\n"}
    report = prepare_kaldi(kaldi_dir(tmp_path, tables), tmp_path / "out.jsonl")
    assert report.skipped == {"shorter than 0.1 s": 3} and report.utterances == 1
    assert [line["id"] for line in read_lines(tmp_path / "out.jsonl")] == ["b"]


def test_verify_decodes_each_recording_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = kaldi_dir(
        tmp_path,
        {
            "wav.scp": "r1 audio/r1.flac\nr2 audio/r2.flac\n",
            "segments": "a r1 0 0.5\nb r1 0.5 1.0\nc r1 1.0 1.5\nd r2 0 0.5\ne r2 0.5 1.0\n",
            "text": "".join(f"{u} HELLO\n" for u in "abcde"),
        },
    )
    truncate(tmp_path / "audio" / "r2.flac")
    decoded = []

    def counting_blocks(path: Path):
        decoded.append(path)
        return audio_blocks(path)

    monkeypatch.setattr("asr.data.prepare.common.audio_blocks", counting_blocks)
    report = prepare_kaldi(data_dir, tmp_path / "out.jsonl", PrepareConfig(jobs=2, verify=True))
    assert sorted(p.name for p in decoded) == ["r1.flac", "r2.flac"]
    assert report.utterances == 3 and report.skipped == {"undecodable audio": 2}


def test_prepare_kaldi_refuses_commands_in_wav_scp(tmp_path: Path) -> None:
    data_dir = kaldi_dir(
        tmp_path, {"wav.scp": "r1 audio/r1.flac\nr2 sox audio/r2.flac -t wav - |\n", "text": "r1 A\nr2 B\n"}
    )
    with pytest.raises(ManifestError, match=r"wav.scp:2: 'r2' is a command .*convert the audio to files first"):
        prepare_kaldi(data_dir, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_malformed_line_of_a_transcribed_utterance_is_counted_once(tmp_path: Path) -> None:
    """Twelve transcribed utterances whose segments lines are malformed were counted twice each:
    malformed, then "no audio entry" ("skipped 24" for 12 lines); so were wav.scp's lines."""
    segments = "".join(f"u{i} r1 {i} {i - 1}\n" for i in range(1, 13)) + "ok r1 0 0.5\n"
    text = "".join(f"u{i} HELLO\n" for i in range(1, 13)) + "ok HELLO\n"
    data_dir = kaldi_dir(tmp_path, {"wav.scp": "r1 audio/r1.flac\n", "segments": segments, "text": text})
    assert prepare_kaldi(data_dir, tmp_path / "out.jsonl").skipped == {"malformed segments line": 12}
    plain = kaldi_dir(tmp_path / "plain", {"wav.scp": "r1 audio/r1.flac\nr2\n", "text": "r1 HELLO\nr2 HELLO\n"})
    assert prepare_kaldi(plain, tmp_path / "plain.jsonl").skipped == {"malformed wav.scp line": 1}


def test_prepare_kaldi_counts_every_malformed_line_by_kind(tmp_path: Path) -> None:
    data_dir = kaldi_dir(
        tmp_path,
        {
            "wav.scp": "r1 audio/r1.flac\nr2 audio/r2.flac\nr1 audio/r2.flac\nr3\nr4 audio/none.flac\n",
            "segments": "a r1 0 0.5\nb r1 0.5 0.4\nc r1 x 1\nd r1 0\ne r9 0 1\nf r4 0 1\n"
            "g r2 0 1\nh r2 5 6\na r2 0 1\nk r1 0 1\nm r3 0 1\n",
            "text": "a HELLO\na AGAIN\ne HELLO\nf HELLO\nh HELLO\nz HELLO\nk\nm HELLO\n",
            "utt2spk": "a s1 extra\n",
        },
    )
    report = prepare_kaldi(data_dir, tmp_path / "out.jsonl")
    assert report.skipped == {
        "malformed wav.scp line": 2,  # r1 again, r3 without a path
        "malformed segments line": 4,  # end before start, start not a number, a field short, a again
        "malformed text line": 1,  # a again
        "malformed utt2spk line": 1,
        "no audio entry": 3,  # e: recording r9 unknown, z: not in segments, m: r3's line is malformed
        "missing audio": 1,  # f: audio/none.flac
        "no transcript": 1,  # g
        "segment past the recording's end": 1,  # h
        "empty text": 1,  # k
    }
    (line,) = read_lines(tmp_path / "out.jsonl")
    assert line == {"id": "a", "audio": str(tmp_path / "audio" / "r1.flac"), "duration": 0.5, "text": "HELLO"} | {
        "start": 0.0,
        "end": 0.5,
    }


@pytest.mark.parametrize(("missing", "problem"), [("wav.scp", "no wav.scp"), ("text", "no text")])
def test_prepare_kaldi_needs_wav_scp_and_text(tmp_path: Path, missing: str, problem: str) -> None:
    tables = {"wav.scp": "r1 audio/r1.flac\n", "text": "r1 HELLO\n"}
    del tables[missing]
    with pytest.raises(ManifestError, match=f"train: {problem}; a Kaldi data directory holds wav.scp and text"):
        prepare_kaldi(kaldi_dir(tmp_path, tables), tmp_path / "out.jsonl")


def test_prepare_kaldi_command_prints_the_summary_and_one_line_per_note(tmp_path: Path, capsys) -> None:
    data_dir = kaldi_dir(tmp_path, {"wav.scp": "r1 audio/r1.flac\nr2 audio/r2.flac\n", "text": "r1 ROOM 101\nr2 HI\n"})
    out = tmp_path / "out.jsonl"
    assert main(["prepare", "kaldi", str(data_dir), "--out", str(out), "--jobs", "1", "--verify"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{out}: 2 utterances, 3.5 s",
        f"{out}: transcripts holding digits: 1 ('1' x2, '0' x1; e.g. '1' in r1: 'ROOM 101'), "
        "which the character vocabulary "
        "cannot spell; --expand-numbers writes them as words",
    ]
    assert main(["prepare", "kaldi", str(data_dir), "--out", str(out), "--expand-numbers"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{out}: 2 utterances, 3.5 s"]
    assert read_lines(out)[0]["text"] == "ROOM one hundred and one"


def test_prepare_kaldi_command_refuses_a_pipe_in_one_line(tmp_path: Path, capsys) -> None:
    data_dir = kaldi_dir(tmp_path, {"wav.scp": "r1 flac -d -c audio/r1.flac |\n", "text": "r1 HELLO\n"})
    assert main(["prepare", "kaldi", str(data_dir), "--out", str(tmp_path / "out.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("asr: error: ") and "convert the audio to files first" in err and err.count("\n") == 1


SPEECHOCEAN = Path(__file__).resolve().parents[3] / "shared" / "data" / "speechocean762"


def test_prepare_kaldi_reads_speechocean762_as_it_is(tmp_path: Path) -> None:
    if not (SPEECHOCEAN / "train" / "wav.scp").is_file():
        pytest.skip(f"the shared speechocean762 corpus is not at {SPEECHOCEAN}")
    report = prepare_kaldi(SPEECHOCEAN / "train", tmp_path / "train.jsonl", PrepareConfig(jobs=2))
    assert report.utterances == 2500 and not report.skipped and not report.notes
    assert report.seconds / 3600 == pytest.approx(2.88, abs=0.01)  # the corpus README's figure
    utterances = read_manifest(tmp_path / "train.jsonl")
    assert len({u.speaker for u in utterances}) == 125
    assert utterances[0].audio == SPEECHOCEAN / "WAVE" / "SPEAKER0001" / "000010011.opus"
