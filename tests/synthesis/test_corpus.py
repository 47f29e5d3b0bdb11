"""Writing and checking a synthetic corpus (`asr.synthesis.corpus`): the LibriSpeech layout,
silences, resume, the check."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.cli import main
from asr.data.manifest import read_manifest
from asr.data.prepare import prepare_librispeech
from asr.synthesis import sentences
from asr.synthesis.config import SUBSETS, CorpusError
from asr.synthesis.corpus import CheckConfig, check_corpus, synthesize_corpus
from asr.synthesis.plan import plan_corpus
from asr.text import normalize
from tests.synthesis.small import SMALL, fake_sentences

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs the Debian packages espeak-ng and sox (apt-get install espeak-ng sox)",
)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 utterances by espeak-ng: 2 chapters of 2 in each subset, from a handful of sentences."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("needs the Debian packages espeak-ng and sox (apt-get install espeak-ng sox)")
    root = tmp_path_factory.mktemp("synth")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sentences, "load_sentences", lambda texts: fake_sentences(40))
        report = synthesize_corpus(root, SMALL, jobs=2)
    assert report.synthesized == 12
    return root


@needs_espeak
def test_corpus_has_the_librispeech_layout(small_corpus: Path) -> None:
    flacs = sorted(small_corpus.glob("*/*/*/*.flac"))
    assert len(flacs) == 12
    for flac in flacs:
        subset, speaker, chapter = flac.parts[-4:-1]
        assert subset in SUBSETS
        assert re.fullmatch(rf"{speaker}-{chapter}-\d{{4}}\.flac", flac.name)
        info = soundfile.info(str(flac))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        transcript_lines = (flac.parent / f"{speaker}-{chapter}.trans.txt").read_text().splitlines()
        assert any(line.startswith(flac.stem + " ") for line in transcript_lines)
        assert all(re.fullmatch(r"[\d-]+ [A-Z' ]+", line) for line in transcript_lines)
    speakers = (small_corpus / "SPEAKERS.TXT").read_text().splitlines()
    rows = [line.split("|") for line in speakers if not line.startswith(";")]
    assert {row[0].strip() for row in rows} == {f.parts[-3] for f in flacs}
    assert all(row[4].strip().startswith("espeak en-") for row in rows)


@needs_espeak
def test_speech_starts_and_ends_with_the_planned_silence(small_corpus: Path) -> None:
    for chapter in plan_corpus(SMALL, fake_sentences(40)):
        for utterance in chapter.utterances:
            samples, rate = soundfile.read(chapter.folder(small_corpus) / f"{utterance.id}.flac")
            lead, tail = round(utterance.lead * rate), round(utterance.tail * rate)
            assert 0.05 <= utterance.lead <= 0.4 and 0.05 <= utterance.tail <= 0.4
            assert not samples[:lead].any() and not samples[len(samples) - tail :].any()
            assert np.abs(samples[lead : lead + rate // 2]).max() > 0.01  # speech follows at once


@needs_espeak
def test_prepare_librispeech_reads_the_corpus_unchanged(small_corpus: Path, tmp_path: Path) -> None:
    reports = prepare_librispeech(small_corpus, list(SUBSETS), tmp_path)
    assert [r.utterances for r in reports] == [4, 4, 4]
    assert all(not r.skipped for r in reports)
    by_subset = {s: read_manifest(tmp_path / f"{s}.jsonl") for s in SUBSETS}
    for subset, utterances in by_subset.items():
        assert all(u.text == normalize(u.text) and u.duration > 0.5 for u in utterances), subset
    speakers = [{u.speaker for u in by_subset[s]} for s in SUBSETS]
    texts = [{u.text for u in by_subset[s]} for s in SUBSETS]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert not speakers[a] & speakers[b] and not texts[a] & texts[b]


@needs_espeak
def test_rerun_resumes_and_leaves_finished_files_alone(small_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flacs = sorted(small_corpus.glob("*/*/*/*.flac"))
    mtimes = {f: f.stat().st_mtime_ns for f in flacs}
    flacs[0].unlink()
    monkeypatch.setattr(sentences, "load_sentences", lambda texts: fake_sentences(40))
    report = synthesize_corpus(small_corpus, SMALL, jobs=1)
    assert report.synthesized == 1
    assert {f: f.stat().st_mtime_ns for f in flacs[1:]} == {f: mtimes[f] for f in flacs[1:]}
    with pytest.raises(CorpusError, match="seed"):
        synthesize_corpus(small_corpus, dataclasses.replace(SMALL, seed=4), jobs=1)
    with pytest.raises(CorpusError, match="excluded_sentences"):
        synthesize_corpus(small_corpus, SMALL, jobs=1, exclude={"THE ALFA AND THE ALFA MET ALFA TODAY"})
    # a folder made before unheard_engines existed has no such key: left out while it is empty
    assert "unheard_engines" not in (small_corpus / "synthesis.json").read_text()
    with pytest.raises(CorpusError, match="unheard_engines"):
        synthesize_corpus(small_corpus, dataclasses.replace(SMALL, unheard_engines=("flite",)), jobs=1)


@needs_espeak
def test_check_passes_the_corpus_and_flags_silent_clipped_and_empty_files(small_corpus: Path, tmp_path: Path) -> None:
    assert check_corpus(small_corpus) == []
    chapter = tmp_path / "test" / "1" / "2"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(0)
    soundfile.write(chapter / "1-2-0000.flac", 1e-4 * rng.standard_normal(16000), 16000, subtype="PCM_16")
    soundfile.write(chapter / "1-2-0001.flac", np.clip(3 * rng.standard_normal(16000), -1, 1), 16000, subtype="PCM_16")
    soundfile.write(chapter / "1-2-0002.flac", np.zeros(0), 16000, subtype="PCM_16")
    soundfile.write(chapter / "1-2-0003.flac", 0.3 * rng.standard_normal(16000), 16000, subtype="PCM_16")
    problems = {p.path.name: p.reason for p in check_corpus(tmp_path, CheckConfig())}
    assert problems.keys() == {"1-2-0000.flac", "1-2-0001.flac", "1-2-0002.flac"}
    assert problems["1-2-0000.flac"].startswith("silent")
    assert problems["1-2-0001.flac"].startswith("clipped")
    assert problems["1-2-0002.flac"].startswith(("empty", "unreadable"))


def test_checking_a_folder_without_a_corpus_is_an_error_not_a_pass(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not a corpus")
    assert main(["synthesize", "--out", str(tmp_path), "--check-only"]) == 1
    assert capsys.readouterr().err == (
        f"asr: error: {tmp_path}: no flac files in <subset>/<speaker>/<chapter>/ folders to check; is it a corpus?\n"
    )
