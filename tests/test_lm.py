import json
import math
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import yaml

from asr import lm_corpus as corpus_module
from asr.checkpoint import list_checkpoints, load_training_state
from asr.cli import main
from asr.config import from_dict
from asr.data import Utterance, write_manifest
from asr.decoding import SearchConfig, beam_search, greedy_search
from asr.errors import UserError
from asr.lm import CharLM, LMConfig, LMDirectoryError, export_lm_dir, load_lm
from asr.lm_corpus import LMTextError, TextCorpus, lm_text, read_text
from asr.lm_evaluation import evaluate_lm
from asr.model import LAS, LASConfig
from asr.synthesis import corpus as _corpus  # noqa: F401  binds its default texts before a test adds a source
from asr.synthesis import sentences
from asr.text import Vocabulary

VOCAB = Vocabulary.default()
TINY = LMConfig(embedding_dim=8, units=16, layers=2, dropout=0.1)
WORDS = [
    "THE",
    "A",
    "CAT",
    "DOG",
    "SAT",
    "RAN",
    "ON",
    "UNDER",
    "MAT",
    "TREE",
    "AND",
    "IT",
    "WAS",
    "GOOD",
    "DON'T",
    "LORD",
]


def tiny_lm(seed: int = 0) -> CharLM:
    torch.manual_seed(seed)
    return CharLM(TINY).eval()


def corpus_of(texts: list[str], tmp_path: Path) -> TextCorpus:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(texts) + "\n")
    return read_text([path])[0]


def write_sentences(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))).lower() + "." for _ in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def stepwise_log_probs(lm: CharLM, inputs: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B,) sentence log-probabilities summed from one `score` call per character (the search's way)."""
    state = lm.initial_state(inputs.shape[0], torch.device("cpu"))
    total = torch.zeros(inputs.shape[0])
    for i in range(inputs.shape[1]):
        log_probs, state = lm.score(state, inputs[:, i])
        picked = log_probs.gather(1, targets[:, i, None])[:, 0]
        total += torch.where(i < lengths, picked, torch.zeros_like(picked))
    return total


def test_teacher_forcing_equals_the_sum_of_the_search_protocol_steps(tmp_path: Path) -> None:
    lm = tiny_lm()
    batch = corpus_of(["THE CAT SAT", "A DOG", "IT WAS GOOD AND THE LORD SAT"], tmp_path).batch([0, 1, 2])
    with torch.no_grad():
        forced = lm(batch.inputs, batch.targets, batch.lengths).sum(1)
        stepped = stepwise_log_probs(lm, batch.inputs, batch.targets, batch.lengths)
    torch.testing.assert_close(forced, stepped, rtol=1e-5, atol=1e-5)
    assert bool((forced < 0).all())


def test_a_batch_scores_each_sentence_as_it_scores_alone_whatever_the_padding(tmp_path: Path) -> None:
    lm = tiny_lm()
    corpus = corpus_of(["THE CAT SAT ON THE MAT", "A", "DON'T RUN"], tmp_path)
    batch = corpus.batch([0, 1, 2])
    padded = torch.nn.functional.pad(batch.inputs, (0, 7), value=VOCAB.pad_id)  # 7 more pad columns
    padded_targets = torch.nn.functional.pad(batch.targets, (0, 7), value=VOCAB.pad_id)
    with torch.no_grad():
        together = lm(batch.inputs, batch.targets, batch.lengths)  # (B, L)
        wider = lm(padded, padded_targets, batch.lengths)
        for row in range(3):
            alone = corpus.batch([row])
            one = lm(alone.inputs, alone.targets, alone.lengths)[0]
            torch.testing.assert_close(together[row, : len(one)], one, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(wider[:, : together.shape[1]], together, rtol=1e-5, atol=1e-6)
    assert bool((wider[:, together.shape[1] :] == 0).all())


def test_blank_pad_and_sos_are_never_predicted() -> None:
    lm = tiny_lm()
    state = lm.initial_state(2, torch.device("cpu"))
    log_probs, _ = lm.score(state, torch.tensor([VOCAB.sos_id, VOCAB.encode("A")[0]]))
    assert log_probs.shape == (2, len(VOCAB))
    forbidden = [VOCAB.blank_id, VOCAB.pad_id, VOCAB.sos_id]
    assert bool(torch.isneginf(log_probs[:, forbidden]).all())
    allowed = [i for i in range(len(VOCAB)) if i not in forbidden]
    assert bool(torch.isfinite(log_probs[:, allowed]).all())
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(2))


def test_reorder_selects_the_rows_of_the_state() -> None:
    lm = tiny_lm()
    tokens = torch.tensor([VOCAB.sos_id] * 3)
    state = lm.initial_state(3, torch.device("cpu"))
    _, state = lm.score(state, tokens)
    _, state = lm.score(state, torch.tensor(VOCAB.encode("ABC")))  # three different histories
    index = torch.tensor([2, 0, 2, 1])
    reordered = lm.reorder(state, index)
    next_tokens = torch.tensor(VOCAB.encode("XYZW"))
    after, _ = lm.score(reordered, next_tokens)
    for row, source in enumerate(index.tolist()):
        single = lm.reorder(state, torch.tensor([source]))
        expected, _ = lm.score(single, next_tokens[row : row + 1])
        torch.testing.assert_close(after[row], expected[0])


def test_fusion_with_a_heavy_lm_weight_makes_greedy_search_spell_the_lm_text() -> None:
    torch.manual_seed(0)
    tiny = {"listener": {"layers": 1, "units": 8, "reduce": []}, "attention": {"dim": 8}, "speller": {"units": 8}}
    las = LAS(from_dict(LASConfig, {**tiny, "vocab_size": len(VOCAB)})).eval()
    lm = tiny_lm(seed=3)
    features, lengths = torch.randn(2, 12, 80), torch.tensor([12, 9])
    fused = greedy_search(las, features, lengths, VOCAB, SearchConfig(beam=1, lm_weight=1e4), lm)
    state, tokens, lm_greedy = lm.initial_state(1, torch.device("cpu")), torch.tensor([VOCAB.sos_id]), []
    with torch.no_grad():
        for _ in range(20):
            log_probs, state = lm.score(state, tokens)
            tokens = log_probs.argmax(1)
            lm_greedy.append(int(tokens))
    for hypothesis in fused:
        assert hypothesis.tokens and list(hypothesis.tokens) == lm_greedy[: len(hypothesis.tokens)]
    plain = beam_search(las, features, lengths, VOCAB, SearchConfig(beam=3))
    unweighted = beam_search(las, features, lengths, VOCAB, SearchConfig(beam=3, lm_weight=0.0), lm)
    weighted = beam_search(las, features, lengths, VOCAB, SearchConfig(beam=3, lm_weight=0.5), lm)
    assert [h.tokens for h in plain] == [h.tokens for h in unweighted] and len(weighted) == 2


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
    corpus, report = read_text([path], cache=tmp_path / "cache")
    expected = ["THE CAT SAT", "ON THE MAT"] if change == "text edited" else ["THE CAT SAT"]
    assert [corpus.text(i) for i in range(len(corpus))] == expected and report.sentences == len(expected)


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


@pytest.fixture()
def lm_experiment(tmp_path: Path) -> Path:
    write_sentences(tmp_path / "train.txt", 200, seed=1)
    write_sentences(tmp_path / "dev.txt", 20, seed=2)
    config = {
        "data": {"max_tokens": 300, "max_chars": 100},
        "model": {"embedding_dim": 8, "units": 24, "layers": 2, "dropout": 0.2},
        "optim": {"schedule": {"lr": 0.01, "warmup_steps": 5, "decay": "cosine"}},
        "epochs": 2,
        "checkpoint_every": 5,
        "log_every": 2,
    }
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def train_args(experiment: Path, exp: Path, *extra: str) -> list[str]:
    return ["lm", "train", "--config", str(experiment / "lm.yaml"), "--text", str(experiment / "train.txt"),
            "--dev-text", str(experiment / "dev.txt"), "--out", str(exp), "--device", "cpu", *extra]  # fmt: skip


def test_training_writes_checkpoints_and_an_lm_directory_that_evaluates(lm_experiment: Path, capsys) -> None:
    exp = lm_experiment / "exp"
    assert main(train_args(lm_experiment, exp)) == 0
    assert "200 sentences" in capsys.readouterr().out
    assert list_checkpoints(exp / "checkpoints") and list((exp / "tensorboard").iterdir())
    validations = yaml.safe_load((exp / "validations.json").read_text())
    assert len(validations) == 2 and validations[-1]["perplexity"] < len(VOCAB)  # it learnt something
    record = yaml.safe_load((exp / "model" / "config.yaml").read_text())
    assert record["format_version"] == 1 and record["lm"]["units"] == 24
    assert sorted(p.name for p in (exp / "model").iterdir()) == ["config.yaml", "model.safetensors", "tokens.txt"]
    lm = load_lm(exp / "model", vocab=VOCAB)
    score = evaluate_lm(lm, read_text([lm_experiment / "dev.txt"])[0])
    best = min(v["perplexity"] for v in validations)  # the exported weights are the best ones
    assert math.isclose(score.perplexity, best, rel_tol=1e-6)
    assert math.isclose(record["dev"]["perplexity"], best, rel_tol=1e-6)
    assert math.isclose(2**score.bits_per_character, score.perplexity)
    assert main(["lm", "evaluate", "--model", str(exp / "model"), "--text", str(lm_experiment / "dev.txt")]) == 0
    assert f"perplexity {score.perplexity:.4f}" in capsys.readouterr().out


def test_resuming_with_a_different_config_is_refused(lm_experiment: Path, capsys) -> None:
    exp = lm_experiment / "exp"
    assert main(train_args(lm_experiment, exp, "--set", "epochs=1")) == 0
    assert main(train_args(lm_experiment, exp, "--set", "seed=5")) == 1
    assert "holds a run with a different config" in capsys.readouterr().err


def long_run(experiment: Path, exp: Path) -> list[str]:
    return train_args(experiment, exp, "--set", "epochs=100", "--set", "max_steps=80")


def final_state(exp: Path) -> dict:
    return load_training_state(list_checkpoints(exp / "checkpoints")[-1])


def test_a_killed_run_resumes_to_the_same_weights_bit_for_bit(lm_experiment: Path) -> None:
    assert main(long_run(lm_experiment, lm_experiment / "whole")) == 0
    command = [sys.executable, "-m", "asr", *long_run(lm_experiment, lm_experiment / "killed")]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list_checkpoints(lm_experiment / "killed" / "checkpoints") and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (lm_experiment / "killed" / "model").exists(), "training finished before it could be killed"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = final_state(lm_experiment / "whole"), final_state(lm_experiment / "killed")
    assert got["progress"]["step"] == expected["progress"]["step"] == 80
    for key, value in expected["model"].items():
        assert torch.equal(got["model"][key], value), key


def broken(directory: Path, what: str) -> None:
    if what == "missing weights":
        (directory / "model.safetensors").unlink()
    elif what == "acoustic config":
        (directory / "config.yaml").write_text(yaml.safe_dump({"format_version": 1, "model": {}}))
    elif what == "future version":
        record = yaml.safe_load((directory / "config.yaml").read_text())
        (directory / "config.yaml").write_text(yaml.safe_dump({**record, "format_version": 99}))
    elif what == "other sizes":
        record = yaml.safe_load((directory / "config.yaml").read_text())
        record["lm"]["units"] = 32
        (directory / "config.yaml").write_text(yaml.safe_dump(record))
    elif what == "damaged weights":
        (directory / "model.safetensors").write_bytes(b"not safetensors")
    elif what == "binary config":
        (directory / "config.yaml").write_bytes(b"\xff\xfe\x00")
    elif what == "NaN weights":
        weights = safetensors.torch.load_file(str(directory / "model.safetensors"))
        weights["output.bias"][0] = float("nan")
        safetensors.torch.save_file(weights, str(directory / "model.safetensors"))


@pytest.mark.parametrize(
    ("what", "file", "problem"),
    [
        ("missing weights", "", "missing model.safetensors"),
        ("acoustic config", "config.yaml", "it is an acoustic model directory"),
        ("future version", "config.yaml", "LM format version 99"),
        ("other sizes", "model.safetensors", "the weights do not fit config.yaml"),
        ("damaged weights", "model.safetensors", "not readable safetensors"),
        ("binary config", "config.yaml", "invalid UTF-8"),
        ("NaN weights", "model.safetensors", "hold NaN or infinity (first: output.bias)"),
    ],
)
def test_an_unusable_lm_directory_is_a_one_line_error_naming_the_file(tmp_path: Path, what, file, problem) -> None:
    directory = export_lm_dir(tmp_path / "lm", tiny_lm().config, tiny_lm().state_dict(), VOCAB)
    load_lm(directory)
    broken(directory, what)
    with pytest.raises(LMDirectoryError) as caught:
        load_lm(directory)
    message = str(caught.value)
    assert f"{directory / file}:" in message or (not file and f"{directory}:" in message)
    assert problem in message and "\n" not in message


def test_an_lm_over_another_vocabulary_is_refused(tmp_path: Path, capsys) -> None:
    directory = export_lm_dir(tmp_path / "lm", tiny_lm().config, tiny_lm().state_dict(), VOCAB)
    other = Vocabulary((*VOCAB.tokens[:-1], "<x>"))
    with pytest.raises(UserError, match="tokens.txt: the LM's tokens are not the acoustic model's"):
        load_lm(directory, vocab=other)
    assert main(["lm", "evaluate", "--model", str(tmp_path / "none"), "--text", str(tmp_path / "t.txt")]) == 1
    assert capsys.readouterr().err == f"asr: error: {tmp_path / 'none'}: no such LM directory\n"
