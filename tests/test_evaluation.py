"""`asr evaluate` on utterances longer than the model was trained on: cut at pauses, as transcription
cuts recordings, unless asked to decode them whole."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile

import asr
from asr.cli import main
from asr.data.manifest import Utterance, write_manifest
from asr.data.prepare import prepare_librispeech
from asr.frontend.audio import SAMPLE_RATE, load_audio
from tests.conftest import LIBRISPEECH
from tests.test_checkpoint import tiny_model_dir
from tests.test_transcribe import FILES, model_dir, text_of  # noqa: F401 (model_dir: the shared fixture)


def joined(folder: Path) -> Path:
    """A manifest of one utterance: four of the fixture's recordings with a second of quiet noise between
    (11 s, longer than any utterance the model learnt), and one recording alone."""
    pause = np.random.default_rng(0).normal(0, 1e-3, SAMPLE_RATE).astype(np.float32)
    pieces = [load_audio(path)[0].numpy() for path in FILES[:4]]
    audio = np.concatenate([part for piece in pieces for part in (piece, pause)][:-1])
    soundfile.write(folder / "joined.flac", audio, SAMPLE_RATE, subtype="PCM_16")
    text = " ".join(text_of(path) for path in FILES[:4])
    utterances = [
        Utterance("joined", folder / "joined.flac", audio.shape[0] / SAMPLE_RATE, text),
        Utterance("alone", FILES[4], load_audio(FILES[4])[0].shape[0] / SAMPLE_RATE, text_of(FILES[4])),
    ]
    write_manifest(folder / "joined.jsonl", utterances)
    return folder / "joined.jsonl"


def hypotheses(folder: Path) -> dict[str, str]:
    return {record["id"]: record["hyp"] for record in map(json.loads, (folder / "hyps.jsonl").open())}


def test_an_utterance_longer_than_any_the_model_learnt_is_cut_at_pauses(model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """By default the joined utterance is decoded as `asr transcribe` decodes a recording (in pieces
    cut at pauses), the short one whole; with --max-seconds inf both whole."""
    manifest = joined(tmp_path)
    recognizer = asr.load_model(model_dir, device="cpu")
    evaluate = ["evaluate", "--model", str(model_dir), "--manifest", str(manifest), "--jobs", "0"]
    assert main([*evaluate, "--out", str(tmp_path / "cut")]) == 0
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    transcript = recognizer.transcribe(tmp_path / "joined.flac")
    assert summary["cut_at_pauses"] == {
        "longer_than_seconds": recognizer.max_seconds,
        "utterances": 1,
        "seconds_judged_silent": round(transcript.left_out, 2),
    }
    assert transcript.left_out > 2.0  # the three pauses, less the margins
    assert len(transcript.segments) == 4  # one piece per recording
    assert hypotheses(tmp_path / "cut") == {"joined": transcript.text, "alone": text_of(FILES[4])}
    assert main([*evaluate, "--out", str(tmp_path / "whole"), "--max-seconds", "inf"]) == 0
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert whole["cut_at_pauses"] == {"longer_than_seconds": None, "utterances": 0, "seconds_judged_silent": 0}
    in_one_piece = recognizer.transcribe(tmp_path / "joined.flac", max_seconds=float("inf"))
    assert len(in_one_piece.segments) == 1
    assert hypotheses(tmp_path / "whole")["joined"] == in_one_piece.text != transcript.text


def test_a_longest_piece_below_one_second_is_a_usage_error(model_dir: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    manifest = joined(tmp_path)
    command = ["evaluate", "--model", str(model_dir), "--manifest", str(manifest), "--out", str(tmp_path / "e")]
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--max-seconds", "0.5"])
    assert exit_.value.code == 2
    assert "must be at least 1 second (or inf), got 0.5" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_references_that_normalisation_spoils_are_named_before_scoring(tmp_path: Path, caplog) -> None:
    """normalize() drops digits from the references: the WER counts words that are not the ones spoken."""
    prepare_librispeech(LIBRISPEECH.parent, ["test-clean"], tmp_path)
    lines = (tmp_path / "test-clean.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    records[0]["text"] = "ROOM 101 IS FREE"
    records[1]["text"] = "   "  # a reference of spaces only scored as silence without a word
    (tmp_path / "digits.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    args = [
        "evaluate",
        "--model",
        str(tiny_model_dir(tmp_path / "model")),
        "--manifest",
        str(tmp_path / "digits.jsonl"),
    ]
    with caplog.at_level(logging.WARNING, logger="asr.evaluation"):
        assert main([*args, "--out", str(tmp_path / "eval"), "--jobs", "0", "--beam", "1"]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'digits.jsonl'}: reference transcripts holding digits: 1 ('1' x2, '0' x1; "
        f"e.g. '1' in {records[0]['id']}: "
        "'ROOM 101 IS FREE'), which the character vocabulary cannot spell; asr prepare --expand-numbers writes them "
        "as words; they are scored without them",
        f"{tmp_path / 'digits.jsonl'}: 1 reference(s) hold no word once normalised (e.g. {records[1]['id']}): "
        "scored as silence, every word heard there counts as an insertion",
    ]
