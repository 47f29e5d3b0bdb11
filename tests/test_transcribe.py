"""Transcription: a tiny model overfit on the fixture's six utterances, then files, waveforms,
long recordings, word times and alignments through the Python API."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import asr
from asr import recognize as recognize_module
from asr.checkpoint import export_model_dir
from asr.cli import main
from asr.cli.transcribe import audio_files
from asr.config import to_dict
from asr.decoding.config import Hypothesis, SearchConfig
from asr.frontend import audio as audio_module
from asr.frontend.audio import SAMPLE_RATE, AudioError, load_audio
from asr.frontend.features import FeatureConfig
from asr.frontend.normalization import compute_stats
from asr.frontend.pipeline import Frontend
from asr.model import LAS, AttentionConfig, LASConfig, ListenerConfig, SpellerConfig
from asr.text import Vocabulary
from tests.conftest import LIBRISPEECH
from tests.overfit import overfit

VOCAB = Vocabulary.default()
FILES = sorted(LIBRISPEECH.glob("*/*/*/*.flac"))
TEXTS = {
    line.split(" ", 1)[0]: line.split(" ", 1)[1].strip()
    for path in LIBRISPEECH.glob("*/*/*/*.trans.txt")
    for line in path.read_text().splitlines()
}


def text_of(path: Path) -> str:
    return TEXTS[path.stem]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory whose tiny LAS has learnt the fixture's six utterances by heart."""
    torch.manual_seed(0)
    waveforms = [load_audio(path)[0] for path in FILES]
    features_config = FeatureConfig()
    stats = compute_stats(waveforms, features_config)
    frontend = Frontend(features_config, stats)
    lengths = torch.tensor([w.shape[0] for w in waveforms])
    features, feature_lengths = frontend(torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True), lengths)
    words = [text_of(path) for path in FILES]
    encoded = [torch.tensor(VOCAB.encode(text)) for text in words]
    targets = torch.nn.utils.rnn.pad_sequence(encoded, batch_first=True, padding_value=VOCAB.pad_id)
    target_lengths = torch.tensor([len(e) for e in encoded])
    config = LASConfig(
        listener=ListenerConfig(layers=2, units=64, reduce=(0, 1), dropout=0.0),
        attention=AttentionConfig(kind="location", dim=64, location_channels=4, location_kernel=9),
        speller=SpellerConfig(embedding_dim=24, units=96, dropout=0.0),
        vocab_size=len(VOCAB),
        ctc_weight=0.3,
        label_smoothing=0.0,
    )
    model = LAS(config)
    batch = (features, feature_lengths, targets, target_lengths)
    if overfit(model, batch, words, VOCAB, lr=4e-3, steps=600, check_every=20, max_length_ratio=1.5) is None:
        pytest.fail("the tiny model did not learn the fixture's six utterances in 600 steps")
    longest = max(w.shape[0] for w in waveforms) / SAMPLE_RATE
    record = {
        "model": to_dict(config),
        "features": to_dict(features_config),
        "decoding": to_dict(SearchConfig(beam=1, max_length_ratio=1.5)),
        "training": {"longest_utterance_seconds": round(longest, 2)},
    }
    directory = tmp_path_factory.mktemp("model") / "model"
    export_model_dir(directory, record, model.state_dict(), VOCAB, stats)
    return directory


@pytest.fixture(scope="module")
def model(model_dir: Path) -> asr.Recognizer:
    return asr.load_model(model_dir, device="cpu")


def test_each_file_is_transcribed_as_it_was_learnt(model: asr.Recognizer) -> None:
    for path in FILES:
        result = model.transcribe(path)
        assert result.text == text_of(path)
        assert result.source == str(path)
        (segment,) = result.segments
        assert segment.start == 0 and segment.end == pytest.approx(result.duration)
        assert segment.avg_log_prob < 0


def test_a_batch_of_files_equals_each_file_alone(model: asr.Recognizer) -> None:
    for beam in (1, 3):
        together = model.transcribe_batch(FILES, beam=beam, batch_size=4)
        alone = [model.transcribe(path, beam=beam) for path in FILES]
        assert [t.text for t in together] == [a.text for a in alone]
        for t, a in zip(together, alone, strict=True):
            assert [s.avg_log_prob for s in t.segments] == pytest.approx([s.avg_log_prob for s in a.segments], abs=1e-4)


def test_any_rate_and_channel_count_gives_the_same_text(model: asr.Recognizer, tmp_path: Path) -> None:
    path = FILES[0]
    waveform = load_audio(path)[0].numpy()
    stereo_44k = np.stack([waveform, 0.5 * waveform], axis=1)  # (N, 2)
    stereo_44k = torch.from_numpy(stereo_44k.T.copy())
    stereo_44k = audio_module.resample(stereo_44k, SAMPLE_RATE, 44100).T.numpy()
    soundfile.write(tmp_path / "stereo.wav", stereo_44k, 44100)
    soundfile.write(tmp_path / "speech.ogg", waveform, SAMPLE_RATE)
    assert model.transcribe(tmp_path / "stereo.wav").text == text_of(path)
    assert model.transcribe(tmp_path / "speech.ogg").text == text_of(path)
    assert model.transcribe(stereo_44k, sample_rate=44100).text == text_of(path)  # (N, C) array
    assert model.transcribe(torch.from_numpy(stereo_44k.T.copy()), sample_rate=44100).text == text_of(path)


def test_bad_waveforms_raise_audio_errors_naming_them(model: asr.Recognizer) -> None:
    with pytest.raises(AudioError, match="<waveform 0>: 0 samples"):
        model.transcribe(np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match="<waveform 0>: contains NaN"):
        model.transcribe(np.full(1600, np.nan, dtype=np.float32))
    with pytest.raises(AudioError, match=r"expected \(N,\) samples"):
        model.transcribe(np.zeros((2, 2, 100), dtype=np.float32))


def test_anti_phase_channels_are_transcribed_not_averaged_to_silence(model: asr.Recognizer, tmp_path: Path) -> None:
    waveform = load_audio(FILES[0])[0].numpy()
    stereo = np.stack([waveform, -waveform], axis=1)  # (N, 2): the mean is 0
    soundfile.write(tmp_path / "anti.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    assert model.transcribe(tmp_path / "anti.wav").text == text_of(FILES[0])
    assert model.transcribe(stereo.T.copy()).text == text_of(FILES[0])  # (C, N) array


def test_audio_beyond_any_recording_s_range_is_an_error_not_an_empty_text(model: asr.Recognizer) -> None:
    waveform = load_audio(FILES[0])[0]
    with pytest.raises(AudioError, match="<waveform 0>: samples reach 1e\\+29"):
        model.transcribe(waveform / waveform.abs().max() * 1e29)


def test_silence_gives_no_segment(model: asr.Recognizer) -> None:
    result = model.transcribe(np.zeros(SAMPLE_RATE * 30, dtype=np.float32))
    assert result.segments == () and result.text == ""
    assert result.duration == 30


def test_audio_left_out_as_silence_is_counted_in_the_summary(model_dir: Path, tmp_path: Path, capsys) -> None:
    gap = np.random.default_rng(0).normal(0, 1e-3, 4 * SAMPLE_RATE).astype(np.float32)  # 4 s of quiet noise
    samples = np.concatenate([load_audio(FILES[0])[0].numpy(), gap, load_audio(FILES[1])[0].numpy()])
    soundfile.write(tmp_path / "two.flac", samples, SAMPLE_RATE)
    result = asr.load_model(model_dir, device="cpu").transcribe(tmp_path / "two.flac")
    assert len(result.segments) == 2 and result.left_out > 3.0  # at least the gap, less the margins
    assert result.left_out == pytest.approx(result.duration - sum(s.end - s.start for s in result.segments))
    assert main(["transcribe", "--model", str(model_dir), str(tmp_path / "two.flac")]) == 0
    assert capsys.readouterr().err == (
        f"asr: {result.left_out:.1f} s of the {result.duration:.1f} s of audio judged silent and not decoded\n"
    )


def test_speech_that_decodes_to_no_word_is_said_not_printed_as_an_empty_line_alone(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(
        asr.Recognizer,
        "_decode",
        lambda self, pieces, search: (None, None, [Hypothesis("", (), -1.0, None, -1.0)] * len(pieces)),
    )
    assert main(["transcribe", "--model", str(model_dir), str(FILES[0])]) == 0
    out, err = capsys.readouterr()
    assert out == "\n" and err.startswith(f"asr: {FILES[0]}: ") and "decoded; the model spelled no word" in err


def test_two_sentences_a_second_apart_in_a_short_file_are_both_transcribed(model_dir: Path, tmp_path: Path) -> None:
    """A file shorter than the longest training utterance was decoded whole, and the speller ended
    at the first sentence's end: the second was lost without a word."""
    gap = np.random.default_rng(0).normal(0, 3e-4, SAMPLE_RATE).astype(np.float32)  # 1 s at -70 dBFS
    samples = np.concatenate([load_audio(FILES[0])[0].numpy(), gap, load_audio(FILES[1])[0].numpy()])
    soundfile.write(tmp_path / "two.flac", samples, SAMPLE_RATE)
    model = asr.load_model(model_dir, device="cpu")
    result = model.transcribe(tmp_path / "two.flac", max_seconds=10.0)  # short: not cut for its length
    assert result.text == f"{text_of(FILES[0])} {text_of(FILES[1])}" and len(result.segments) == 2
    whole = model.transcribe(tmp_path / "two.flac", max_seconds=10.0, sentence_pause=math.inf)
    assert len(whole.segments) == 1 and whole.segments[0].start == 0.0


def long_recording(path: Path, minutes: float) -> list[tuple[float, float]]:
    """Write the fixture's utterances round and round, 0.6-1.2 s of quiet noise apart, for
    `minutes`; returns where each utterance's speech (its samples above -40 dBFS) lies, in seconds."""
    rng = np.random.default_rng(0)
    speech = [load_audio(f)[0].numpy() for f in FILES]
    placed, chunks, position = [], [], 0
    while position < minutes * 60 * SAMPLE_RATE:
        for samples in speech:
            gap = rng.normal(0, 1e-3, int(rng.uniform(0.6, 1.2) * SAMPLE_RATE)).astype(np.float32)
            chunks.extend([gap, samples])
            loud = np.flatnonzero(np.abs(samples) > 0.01)
            start = position + len(gap)
            placed.append(((start + loud[0]) / SAMPLE_RATE, (start + loud[-1]) / SAMPLE_RATE))
            position = start + len(samples)
    chunks.append(rng.normal(0, 1e-3, SAMPLE_RATE).astype(np.float32))
    soundfile.write(path, np.concatenate(chunks), SAMPLE_RATE, subtype="PCM_16")
    return placed


def test_a_ten_minute_file_is_cut_at_pauses_and_read_one_piece_at_a_time(
    model: asr.Recognizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "long.flac"
    placed = long_recording(path, minutes=10)
    reads, batches = [], []
    real_load, real_frontend = audio_module.load_audio, model.loaded.frontend.forward

    def spy_load(file, start=0.0, duration=None):
        reads.append(duration)
        return real_load(file, start, duration)

    def spy_frontend(waveforms, lengths):
        batches.append(tuple(waveforms.shape))
        return real_frontend(waveforms, lengths)

    monkeypatch.setattr("asr.transcribe.load_audio", spy_load)
    monkeypatch.setattr(model.loaded.frontend, "forward", spy_frontend)
    config = model.config(batch_size=8)
    max_seconds = config.segmenter.max_seconds
    ((_, result),) = list(model.transcribe_all([path], config))
    monkeypatch.undo()
    assert result.duration > 600
    assert reads and all(d is not None and d <= max_seconds for d in reads)  # never the whole file
    assert all(b <= 8 and n <= max_seconds * SAMPLE_RATE for b, n in batches)  # one batch of pieces at a time
    assert len(result.segments) == len(placed)  # one piece per utterance: the pauses are too long to join
    for segment, (start, end) in zip(result.segments, placed, strict=True):
        assert segment.start < start and end < segment.end <= segment.start + max_seconds
    assert all(a.end <= b.start for a, b in zip(result.segments, result.segments[1:], strict=False))
    waveform = load_audio(path)[0]
    for segment in result.segments[::40]:  # decoded in batches of pieces as it would be alone
        piece = waveform[round(segment.start * SAMPLE_RATE) : round(segment.end * SAMPLE_RATE)]
        assert model.transcribe(piece).text == segment.text


def test_word_times_are_ordered_and_inside_their_segment(model: asr.Recognizer, tmp_path: Path) -> None:
    path = tmp_path / "long.flac"
    long_recording(path, minutes=0.5)
    result = model.transcribe(path, word_timestamps=True)
    for segment in result.segments:
        assert [w.text for w in segment.words] == segment.text.split()
        times = [t for w in segment.words for t in (w.start, w.end)]
        assert times == sorted(times)
        assert segment.start <= times[0] and times[-1] <= segment.end


def test_alignment_of_a_file_has_a_row_per_character(model: asr.Recognizer) -> None:
    alignment = model.align(FILES[0])
    hypothesis = alignment.hypothesis
    assert hypothesis.text == text_of(FILES[0])
    assert hypothesis.attention.shape[0] == len(hypothesis.text) + 1
    assert alignment.features.shape[1] == 80
    torch.testing.assert_close(hypothesis.attention.sum(-1), torch.ones(len(hypothesis.text) + 1))


# ---------------------------------------------------------------- the command line


def srt_times(text: str, decimal: str) -> list[tuple[float, float]]:
    """(start, end) seconds of every cue line 'HH:MM:SS,mmm --> HH:MM:SS,mmm'."""
    pattern = rf"(\d\d):(\d\d):(\d\d){re.escape(decimal)}(\d\d\d) --> (\d\d):(\d\d):(\d\d){re.escape(decimal)}(\d\d\d)"
    times = []
    for match in re.finditer(pattern, text):
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
        times.append((h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000))
    return times


def test_every_format_parses_with_ordered_times_inside_the_audio(model_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "in").mkdir()
    long_recording(tmp_path / "in" / "long.flac", minutes=1)
    out = tmp_path / "out"
    args = ["transcribe", "--model", str(model_dir), str(tmp_path / "in" / "long.flac"), "--format", "all"]
    assert main([*args, "--output-dir", str(out), "--word-timestamps"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"long.{f}" for f in ("json", "srt", "tsv", "txt", "vtt")]
    record = json.loads((out / "long.json").read_text())
    duration = record["duration"]
    assert duration == pytest.approx(soundfile.info(tmp_path / "in" / "long.flac").duration, abs=1e-3)
    assert (out / "long.txt").read_text() == record["text"] + "\n"
    cues = [(s["start"], s["end"]) for s in record["segments"]]
    srt = (out / "long.srt").read_text()
    vtt = (out / "long.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n")
    rows = [line.split("\t") for line in (out / "long.tsv").read_text().splitlines()]
    assert rows[0] == ["start", "end", "text"]
    for times in (cues, srt_times(srt, ","), srt_times(vtt, "."), [(float(a), float(b)) for a, b, _ in rows[1:]]):
        assert len(times) == len(record["segments"]) > 10
        flat = [t for pair in times for t in pair]
        assert flat == sorted(flat) and flat[0] >= 0 and flat[-1] <= duration
    assert [row[2] for row in rows[1:]] == [s["text"] for s in record["segments"]]
    assert [int(line) for line in srt.split("\n\n")[0].splitlines()[:1]] == [1]
    for segment in record["segments"]:
        assert " ".join(w["text"] for w in segment["words"]) == segment["text"]
    assert not list(out.glob(".*"))  # no temporary files left


def test_several_files_print_a_line_each_and_folders_are_searched(model_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["transcribe", "--model", str(model_dir), str(FILES[0]), str(LIBRISPEECH / "test-clean")]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = [FILES[0], *sorted((LIBRISPEECH / "test-clean").rglob("*.flac"))]
    assert lines == [f"{path}\t{text_of(path)}" for path in expected]
    assert main(["transcribe", "--model", str(model_dir), str(FILES[1]), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == text_of(FILES[1])


def test_a_folder_s_linked_sub_folders_are_searched_and_a_link_loop_ends(tmp_path: Path) -> None:
    """`asr transcribe DIR` left out DIR's linked sub-folders without a word."""
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(FILES[0], tmp_path / "elsewhere" / "far.flac")
    (tmp_path / "dir" / "near").mkdir(parents=True)
    shutil.copy(FILES[1], tmp_path / "dir" / "near" / "near.flac")
    (tmp_path / "dir" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "dir" / "near" / "up").symlink_to(tmp_path / "dir")  # a loop
    files, errors = audio_files([tmp_path / "dir"])
    assert errors == [] and sorted(name for _, name in files) == [Path("linked/far"), Path("near/near")]


def test_a_tab_or_newline_in_a_file_name_is_escaped_in_the_printed_lines(
    model_dir: Path, tmp_path: Path, capsys
) -> None:
    odd = tmp_path / "a\tb\nc\\d.flac"
    shutil.copy(FILES[0], odd)
    assert main(["transcribe", "--model", str(model_dir), str(odd), str(FILES[1])]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path}/a\\tb\\nc\\\\d.flac\t{text_of(FILES[0])}",
        f"{FILES[1]}\t{text_of(FILES[1])}",
    ]


def test_a_folder_keeps_its_layout_in_the_output_dir(model_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["transcribe", "--model", str(model_dir), str(LIBRISPEECH), "--output-dir", str(out)]) == 0
    for path in FILES:
        name = path.relative_to(LIBRISPEECH).with_suffix(".txt")
        assert (out / name).read_text() == text_of(path) + "\n"


def test_bad_files_are_reported_in_a_line_each_and_the_others_transcribed(
    model_dir: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "notes.wav").write_text("not audio")
    full = tmp_path / "cut.wav"
    soundfile.write(full, load_audio(FILES[0])[0].numpy(), SAMPLE_RATE)
    full.write_bytes(full.read_bytes()[:2000])
    missing = tmp_path / "missing.flac"
    inputs = [str(tmp_path / "notes.wav"), str(FILES[0]), str(missing), str(full), str(FILES[1])]
    assert main(["transcribe", "--model", str(model_dir), *inputs]) == 1
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 3 and all(line.startswith("asr: error: ") for line in errors)
    for path, problem in (
        (missing, "no such file"),
        (tmp_path / "notes.wav", "not a readable audio"),
        (full, "truncated"),
    ):
        assert any(str(path) in line and problem in line for line in errors)
    assert captured.out.splitlines() == [f"{FILES[0]}\t{text_of(FILES[0])}", f"{FILES[1]}\t{text_of(FILES[1])}"]


@pytest.mark.parametrize(
    ("make_args", "problem"),
    [
        (lambda t, m: ["--model", str(t / "nowhere"), str(FILES[0])], "nowhere: no such model directory"),
        (lambda t, m: ["--model", str(t), str(FILES[0])], "not a model directory (missing config.yaml"),
        (lambda t, m: ["--model", str(m), str(FILES[0]), "--format", "docx"], "--format: unknown format docx"),
        (
            lambda t, m: ["--model", str(m), str(FILES[0]), "--format", "txt,srt"],
            "several --format values need --output-dir",
        ),
        (
            lambda t, m: ["--model", str(m), str(FILES[0]), str(FILES[0]), "--output-dir", str(t / "o")],
            "would both write",
        ),
        (lambda t, m: ["--model", str(m), str(t)], "no audio files in this folder"),
        (lambda t, m: ["--model", str(m), str(FILES[0]), "--ctc-weight", "2"], "decoding: need 0 <= ctc_weight <= 1"),
        (lambda t, m: ["--model", str(m), str(FILES[0]), "--max-seconds", "0.5"], "max_seconds must be at least 1 s"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_1_and_write_nothing(
    model_dir: Path, tmp_path: Path, capsys, make_args, problem
) -> None:
    before = set(tmp_path.rglob("*"))
    assert main(["transcribe", *make_args(tmp_path, model_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("asr: error: ") and problem in err and err.count("\n") == 1
    assert set(tmp_path.rglob("*")) == before


def test_align_draws_a_png_of_the_attention(model_dir: Path, tmp_path: Path, capsys) -> None:
    plot = tmp_path / "plots" / "align.png"
    assert main(["align", "--model", str(model_dir), str(FILES[0]), "--plot", str(plot)]) == 0
    assert capsys.readouterr().out == f"{plot}: {text_of(FILES[0])}\n"
    header = plot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    assert width == 1000 and height > 300  # 10 inches at 100 dpi; taller with more characters


def test_segment_texts_and_words_are_normalised(model: asr.Recognizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A speller may spell a leading space, two spaces, or a lone apostrophe: none reaches the result."""
    raw = " IT'S  A ' CAT "

    def decode(pieces, search):
        attention = torch.eye(len(raw) + 1, 40)  # character i attends to listener frame i
        return None, None, [Hypothesis(raw, tuple(VOCAB.encode(raw)), -1.0, attention, -3.0) for _ in pieces]

    monkeypatch.setattr(model, "_decode", decode)
    (segment,) = model.transcribe(FILES[0], word_timestamps=True).segments
    assert segment.text == "IT'S A CAT"
    assert [w.text for w in segment.words] == ["IT'S", "A", "CAT"]
    assert segment.avg_log_prob == pytest.approx(-3.0 / (len(VOCAB.encode(raw)) + 1))


def test_an_output_dir_that_is_a_file_is_refused_before_decoding(model_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "out").write_text("a file")
    assert main(["transcribe", "--model", str(model_dir), str(FILES[0]), "--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err == f"asr: error: {tmp_path / 'out'}: is a file, not a folder; give --output-dir a folder\n"


def test_a_failed_write_is_one_line_and_the_other_files_are_written(
    model_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asr.cli import transcribe as cli

    real = cli.atomic_write_text

    def disk_full_for_the_first(path: Path, text: str) -> None:
        if path.stem == FILES[0].stem:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(cli, "atomic_write_text", disk_full_for_the_first)
    out = tmp_path / "out"
    assert main(["transcribe", "--model", str(model_dir), str(FILES[0]), str(FILES[1]), "--output-dir", str(out)]) == 1
    assert capsys.readouterr().err == f"asr: error: {out / FILES[0].stem}.txt: no space left on device\n"
    assert (out / f"{FILES[1].stem}.txt").read_text() == text_of(FILES[1]) + "\n"


def test_a_file_name_that_is_not_utf8_is_transcribed_and_printed_as_its_bytes(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    latin1 = os.fsencode(folder) + b"/caf\xe9.flac"
    shutil.copy(FILES[0], latin1)
    shutil.copy(FILES[1], folder / "plain.flac")
    command = [sys.executable, "-m", "asr", "transcribe", "--model", str(model_dir), str(folder), "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        latin1 + b"\t" + text_of(FILES[0]).encode(),
        os.fsencode(folder / "plain.flac") + b"\t" + text_of(FILES[1]).encode(),
    ]
    assert subprocess.run([*command, "--format", "json,txt", "--output-dir", str(tmp_path / "out")]).returncode == 0
    record = json.loads((tmp_path / "out" / "caf\udce9.json").read_text())
    assert record["source"] == f"{folder}/caf\ufffd.flac" and record["text"] == text_of(FILES[0])


def test_int8_weights_transcribe_the_learnt_files_the_same(model_dir: Path) -> None:
    int8 = asr.load_model(model_dir, device="cpu", int8=True)
    assert type(int8.loaded.model.speller.cells[0]).__module__.startswith("torch.ao.nn.quantized")
    assert [t.text for t in int8.transcribe_batch(FILES[:3])] == [text_of(path) for path in FILES[:3]]


def test_the_models_search_is_read_once_and_a_given_search_is_overridden_by_name(model: asr.Recognizer) -> None:
    assert model.search == SearchConfig(beam=1, max_length_ratio=1.5)  # the model directory's decoding section
    given = SearchConfig(beam=2, attention_window=8)
    assert model.config(search=given).search == given
    assert model.config(search=given, attention_window=4, beam=None).search == SearchConfig(beam=2, attention_window=4)
    same_as_the_models = SearchConfig(beam=3, max_length_ratio=1.5)
    assert model.transcribe(FILES[0], search=same_as_the_models, beam=1).text == text_of(FILES[0])


def test_an_attention_window_reaches_the_search_from_the_api_and_the_command_line(
    model_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    model = asr.load_model(model_dir, device="cpu")
    assert model.config(attention_window=16).search.attention_window == 16
    assert model.config().search.attention_window == 0  # the model's own setting
    windows = []  # the attention window of each search the command runs

    def seen_by(search):
        def search_that_records(model, features, lengths, vocab, config, *args, **kwargs):
            windows.append(config.attention_window)
            return search(model, features, lengths, vocab, config, *args, **kwargs)

        return search_that_records

    for name in ("greedy_search", "beam_search"):
        monkeypatch.setattr(recognize_module, name, seen_by(getattr(recognize_module, name)))
    # wider than every recording's listener frames: the same text as without a window
    assert main(["transcribe", "--model", str(model_dir), str(FILES[0]), "--attention-window", "100000"]) == 0
    assert text_of(FILES[0]) in capsys.readouterr().out
    assert windows and set(windows) == {100000}
    windows.clear()
    plot = str(tmp_path / "align.png")
    assert main(["align", "--model", str(model_dir), str(FILES[0]), "--plot", plot, "--attention-window", "8"]) == 0
    assert windows == [8]  # asr align has every search flag too
    with pytest.raises(SystemExit) as stopped:
        main(["transcribe", "--model", str(model_dir), str(FILES[0]), "--attention-window", "-1"])
    assert stopped.value.code == 2 and "--attention-window" in capsys.readouterr().err
