"""The LM's text (`asr.lm.corpus`): normalisation with counts, one-line errors, the cache, LM text
without the excluded sentences."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.cli import main
from asr.data.manifest import Utterance, write_manifest
from asr.lm import corpus as corpus_module
from asr.lm.corpus import LMTextError, lm_text, read_text
from asr.synthesis import corpus as _corpus  # noqa: F401  binds its default texts before a test adds a source
from asr.synthesis import sentences


def test_text_is_normalised_and_skipped_lines_are_counted_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("Hello, world!\n\n  \n1984\nIt's the café's.\n" + "word " * 30 + "\n")
    corpus, report = read_text([path], max_chars=100)
    assert [corpus.text(i) for i in range(len(corpus))] == ["HELLO WORLD", "IT'S THE CAFE'S"]
    assert (report.sentences, report.empty, report.too_long, report.characters) == (2, 3, 1, 26)
    summary = report.summary()
    assert "\n" not in summary and "2 sentences" in summary and "3 lines empty" in summary and "1 longer" in summary


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "no such file"), (b"\xff\xfe bad\n", "not UTF-8 text"), (b"123\n\n", "no sentence is left")],
)
def test_unusable_text_is_a_one_line_error_naming_the_file(tmp_path: Path, content, problem, cached) -> None:
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LMTextError) as caught:
        read_text([path], cache=tmp_path / "cache" if cached else None)
    assert str(path) in str(caught.value) and problem in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_a_cached_corpus_is_the_same_and_is_mapped_without_reading_the_text_again(tmp_path: Path, monkeypatch) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("The cat sat.\n\nA dog ran!\n")
    second.write_text("word " * 30 + "\nIt was good.\n")
    plain, plain_report = read_text([first, second], max_chars=100)
    cached, report = read_text([first, second], max_chars=100, cache=tmp_path / "cache")
    assert isinstance(cached.ids, np.memmap) and report == plain_report
    assert [cached.text(i) for i in range(len(cached))] == ["THE CAT SAT", "A DOG RAN", "IT WAS GOOD"]
    assert cached.lengths == plain.lengths
    batches = vars(cached.batch([2, 0])), vars(plain.batch([2, 0]))
    assert all(torch.equal(batches[0][name], batches[1][name]) for name in batches[1])

    def unread(*args):
        raise AssertionError("the text was read again")

    monkeypatch.setattr(corpus_module, "_encode", unread)
    again, again_report = read_text([first, second], max_chars=100, cache=tmp_path / "cache")
    assert again_report == report and np.array_equal(again.ids, cached.ids)
    with pytest.raises(AssertionError, match="read again"):  # another limit is another corpus
        read_text([first, second], max_chars=50, cache=tmp_path / "cache")


@pytest.mark.parametrize(
    "change", ["text edited", "cut before its report", "report garbled", "report without counts", "ids deleted"]
)
def test_a_cache_that_no_longer_matches_its_text_is_written_again(tmp_path: Path, change) -> None:
    path = tmp_path / "text.txt"
    path.write_text("The cat sat.\n")
    read_text([path], cache=tmp_path / "cache")
    record = tmp_path / "cache" / "report.json"
    if change == "text edited":
        path.write_text("The cat sat.\nOn the mat.\n")
    elif change == "cut before its report":
        record.unlink()
        (tmp_path / "cache" / "ids.u8").write_bytes(b"\x00" * 3)
    elif change == "report garbled":
        record.write_bytes(b'{"key": [\xff')
    elif change == "report without counts":  # the right key, edited by hand
        record.write_text(json.dumps({"key": json.loads(record.read_text())["key"], "report": {"sentences": "1"}}))
    else:
        (tmp_path / "cache" / "ids.u8").unlink()
    if change == "cut before its report":  # killed in the middle of writing the ids: its temporary file stays
        (tmp_path / "cache" / ".ids.u8.k1ll3d.tmp").write_bytes(b"\x00" * 1000)
    corpus, report = read_text([path], cache=tmp_path / "cache")
    expected = ["THE CAT SAT", "ON THE MAT"] if change == "text edited" else ["THE CAT SAT"]
    assert [corpus.text(i) for i in range(len(corpus))] == expected and report.sentences == len(expected)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ids.u8", "offsets.npy", "report.json"]


def test_lm_text_leaves_out_the_sentences_of_the_excluded_manifests(tmp_path: Path, monkeypatch, capsys) -> None:
    passages = ["The cat sat on the mat. A dog ran under the tree.", "It was good and the Lord saw it."]
    monkeypatch.setitem(sentences.SOURCES, "tiny", lambda: iter(passages))
    manifest = tmp_path / "test.jsonl"
    held_out = ["a dog ran under the tree", "nothing the sources hold at all"]
    write_manifest(manifest, [Utterance(f"u{i}", tmp_path / "a.flac", 1.0, t) for i, t in enumerate(held_out)])
    text = lm_text(["tiny"], [manifest])
    assert text.sentences == ("THE CAT SAT ON THE MAT", "IT WAS GOOD AND THE LORD SAW IT")
    assert (text.removed, text.excluded) == (1, 2)
    out = tmp_path / "lm.txt"
    assert main(["lm", "text", "--sources", "tiny", "--exclude", str(manifest), "--out", str(out)]) == 0
    assert out.read_text().splitlines() == list(text.sentences)
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "removed 1 " in printed
    assert main(["lm", "text", "--transcripts", str(manifest), "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["A DOG RAN UNDER THE TREE", "NOTHING THE SOURCES HOLD AT ALL"]


def test_lm_text_with_a_vocabulary_keeps_a_closed_vocabulary_corpus_s_sentences(tmp_path: Path, monkeypatch) -> None:
    passages = ["The cat sat on it. The dog sat on it. The cat ran far away. A cat sat on it."]
    monkeypatch.setitem(sentences.SOURCES, "tiny", lambda: iter(passages))
    manifest = tmp_path / "test.jsonl"
    write_manifest(manifest, [Utterance("u0", tmp_path / "a.flac", 1.0, "the dog sat on it")])
    # words by count: CAT, IT, ON, SAT 3; THE 3; then A, AWAY, DOG, FAR, RAN once (ties alphabetical)
    assert lm_text(["tiny"], [manifest], vocabulary=6).sentences == ("THE CAT SAT ON IT", "A CAT SAT ON IT")
    assert lm_text(["tiny"], [manifest], vocabulary=8).removed == 1
    assert lm_text(["tiny"], vocabulary=5).sentences == ("THE CAT SAT ON IT",)
    out = tmp_path / "lm.txt"
    assert main(["lm", "text", "--sources", "tiny", "--vocabulary", "6", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["THE CAT SAT ON IT", "A CAT SAT ON IT"]
    with pytest.raises(SystemExit):
        main(["lm", "text", "--sources", "tiny", "--vocabulary", "-1", "--out", str(out)])
