"""The character LM (`asr.lm.model`): teacher forcing equals the search protocol's steps, padding
invariance, shallow fusion."""

from pathlib import Path

import torch

from asr.config import from_dict
from asr.decoding.beam import beam_search
from asr.decoding.config import SearchConfig
from asr.decoding.greedy import greedy_search
from asr.lm import CharLM, LMConfig
from asr.lm.corpus import TextCorpus, read_text
from asr.model import LAS, LASConfig
from asr.synthesis import corpus as _corpus  # noqa: F401  binds its default texts before a test adds a source
from asr.text import Vocabulary

VOCAB = Vocabulary.default()


TINY = LMConfig(embedding_dim=8, units=16, layers=2, dropout=0.1)


def tiny_lm(seed: int = 0) -> CharLM:
    torch.manual_seed(seed)
    return CharLM(TINY).eval()


def corpus_of(texts: list[str], tmp_path: Path) -> TextCorpus:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(texts) + "\n")
    return read_text([path])[0]


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
