import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asr.decoding.beam import beam_search
from asr.decoding.config import Hypothesis, SearchConfig
from asr.decoding.greedy import greedy_search
from asr.decoding.ranking import Finished
from asr.decoding.rules import RepetitionGuard, ctc_greedy_lengths
from asr.decoding.scorers import CTCPrefixScorer
from asr.model import LAS
from tests.test_model import VOCAB, digits, random_batch, tiny


@pytest.fixture(scope="module")
def trained(fsdd: Path) -> tuple[LAS, torch.Tensor, torch.Tensor, list[str]]:
    """A tiny model overfitted on five real digits (about 100 steps), with its batch."""
    torch.manual_seed(0)
    features, lengths, targets, target_lengths, words = digits(fsdd)
    model = LAS(tiny("location"))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        optimizer.zero_grad()
        model(features, lengths, targets, target_lengths).total.backward()
        optimizer.step()
    return model.eval(), features, lengths, words


def texts(hypotheses: list[Hypothesis]) -> list[str]:
    return [h.text for h in hypotheses]


def test_greedy_and_beam_decode_the_trained_digits(trained) -> None:
    model, features, lengths, words = trained
    assert texts(greedy_search(model, features, lengths, VOCAB, SearchConfig(beam=1))) == words
    assert texts(beam_search(model, features, lengths, VOCAB, SearchConfig(beam=4))) == words
    assert texts(beam_search(model, features, lengths, VOCAB, SearchConfig(beam=4, ctc_weight=0.3))) == words


def test_a_narrow_attention_window_still_decodes_the_trained_digits(trained) -> None:
    model, features, lengths, words = trained
    # this tiny model's attention jumps about (peaks 0, 17, 0 in THREE), so the window is 16 of 22..31 frames
    config = SearchConfig(beam=4, attention_window=16, keep_attention=True)
    assert int(model.encode(features, lengths)[1].min()) > config.attention_window
    hypotheses = beam_search(model, features, lengths, VOCAB, config)
    assert texts(hypotheses) == words
    for h in hypotheses:  # each step's weights lie in a window of attention_window frames
        spread = [int(nonzero[-1] - nonzero[0]) + 1 for nonzero in (row.nonzero()[:, 0] for row in h.attention)]
        assert max(spread) <= config.attention_window
    assert texts(greedy_search(model, features, lengths, VOCAB, dataclasses.replace(config, beam=1))) == words


def test_an_attention_window_is_refused_for_an_attention_without_one(trained) -> None:
    _, features, lengths, _ = trained
    model = LAS(tiny("dot")).eval()
    with pytest.raises(ValueError, match="additive or location attention"):
        greedy_search(model, features, lengths, VOCAB, SearchConfig(beam=1, attention_window=4))
    with pytest.raises(ValueError, match="attention_window"):
        SearchConfig(attention_window=-1)


@pytest.mark.parametrize("window", [0, 6])
@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_an_utterance_decodes_the_same_alone_and_in_a_padded_batch(trained, search, window: int) -> None:
    model, features, lengths, _ = trained
    config = SearchConfig(beam=3, ctc_weight=0.3, attention_window=window, keep_attention=True)
    batch = search(model, features, lengths, VOCAB, config)
    for i, hypothesis in enumerate(batch):
        (alone,) = search(model, features[i : i + 1, : lengths[i]], lengths[i : i + 1], VOCAB, config)
        assert alone.tokens == hypothesis.tokens
        assert alone.score == pytest.approx(hypothesis.score, abs=1e-4)
        torch.testing.assert_close(alone.attention, hypothesis.attention, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("trained_model", [True, False])
def test_beam_of_one_equals_greedy(trained, trained_model: bool) -> None:
    model, features, lengths, _ = trained
    if not trained_model:  # an untrained model never says EOS: both must stop at the length limit
        torch.manual_seed(1)
        model = LAS(tiny("additive")).eval()
    config = SearchConfig(beam=1, max_length_ratio=0.6)
    greedy = greedy_search(model, features, lengths, VOCAB, config)
    beam = beam_search(model, features, lengths, VOCAB, config)
    assert [h.tokens for h in beam] == [h.tokens for h in greedy]
    assert [h.score for h in beam] == pytest.approx([h.score for h in greedy], abs=1e-5)


def test_batched_beam_search_equals_per_utterance_on_an_untrained_model() -> None:
    torch.manual_seed(2)
    model = LAS(tiny("multihead")).eval()
    features, lengths, _, _ = random_batch([64, 41, 29], [1, 1, 1])
    config = SearchConfig(beam=5, max_length_ratio=0.5, ctc_weight=0.4)
    batch = beam_search(model, features, lengths, VOCAB, config)
    for i in range(3):
        (alone,) = beam_search(model, features[i : i + 1, : lengths[i]], lengths[i : i + 1], VOCAB, config)
        assert alone.tokens == batch[i].tokens


@pytest.mark.parametrize("looks", [3, 1000])
def test_looking_at_stopped_utterances_only_now_and_then_finds_what_looking_every_step_does(
    trained, monkeypatch, looks: int
) -> None:
    """On a GPU the search looks at which utterances stopped every few steps only (no wait for the
    device in between); stopped utterances ride along meanwhile and must change nothing."""
    model, features, lengths, _ = trained
    config = SearchConfig(beam=3, ctc_weight=0.3, end_detect=True, end_window=2, keep_attention=True)
    every_step = beam_search(model, features, lengths, VOCAB, config)
    monkeypatch.setattr("asr.decoding.beam.look_every", lambda device: looks)
    now_and_then = beam_search(model, features, lengths, VOCAB, config)
    for seldom, always in zip(now_and_then, every_step, strict=True):
        assert seldom.tokens == always.tokens and seldom.score == pytest.approx(always.score, abs=1e-5)
        assert torch.equal(seldom.peaks, always.peaks)
        torch.testing.assert_close(seldom.attention, always.attention)


@pytest.mark.parametrize("looks", [2, 3, 1000])
def test_greedy_search_looking_now_and_then_finds_what_looking_every_step_does(trained, monkeypatch, looks) -> None:
    """Greedy search (validation) on a GPU waits for the device only at its looks, as beam search."""
    model, features, lengths, _ = trained
    config = SearchConfig(ctc_weight=0.3, keep_attention=True)
    every_step = greedy_search(model, features, lengths, VOCAB, config)
    monkeypatch.setattr("asr.decoding.greedy.look_every", lambda device: looks)
    now_and_then = greedy_search(model, features, lengths, VOCAB, config)
    for seldom, always in zip(now_and_then, every_step, strict=True):
        assert seldom.tokens == always.tokens and seldom.score == pytest.approx(always.score, abs=1e-5)
        assert torch.equal(seldom.peaks, always.peaks)
        torch.testing.assert_close(seldom.attention, always.attention)


def test_hypotheses_keep_each_steps_attention_peak_and_the_weights_only_when_asked(trained) -> None:
    model, features, lengths, _ = trained
    for search in (greedy_search, beam_search):
        kept = search(model, features, lengths, VOCAB, SearchConfig(beam=2, keep_attention=True))
        peaks_only = search(model, features, lengths, VOCAB, SearchConfig(beam=2))
        for with_weights, without in zip(kept, peaks_only, strict=True):
            assert without.attention is None and with_weights.tokens == without.tokens
            assert torch.equal(without.peaks, with_weights.attention.argmax(-1))


def test_hypotheses_carry_attention_over_listener_frames(trained) -> None:
    model, features, lengths, words = trained
    encoded_lengths = model.encode(features, lengths)[1]
    for hypothesis, frames in zip(
        beam_search(model, features, lengths, VOCAB, SearchConfig(beam=2, keep_attention=True)),
        encoded_lengths,
        strict=True,
    ):
        assert hypothesis.attention.shape == (len(hypothesis.tokens) + 1, int(frames))
        torch.testing.assert_close(hypothesis.attention.sum(-1), torch.ones(len(hypothesis.tokens) + 1))


def test_length_limits_hold(trained) -> None:
    model, features, lengths, _ = trained
    frames = model.encode(features, lengths)[1]
    fixed = SearchConfig(beam=3, min_length_ratio=0.5, max_length_ratio=0.5, max_chars_per_second=1000)
    for hypothesis, n in zip(beam_search(model, features, lengths, VOCAB, fixed), frames.tolist(), strict=True):
        assert len(hypothesis.tokens) == n // 2  # EOS suppressed until the maximum length


class ForbiddingLM:
    """A character LM that gives one letter probability zero and is uniform otherwise."""

    def __init__(self, letter: str) -> None:
        self.banned = VOCAB.encode(letter)[0]

    def initial_state(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch, device=device)

    def score(self, state: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = torch.full((tokens.shape[0], len(VOCAB)), -torch.log(torch.tensor(float(len(VOCAB) - 1))))
        logp[:, self.banned] = float("-inf")
        return logp, state + 1

    def reorder(self, state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state.index_select(0, index)


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_shallow_fusion_with_a_language_model_changes_the_result(trained, search) -> None:
    model, features, lengths, words = trained
    config = SearchConfig(beam=3, lm_weight=0.5)
    fused = texts(search(model, features, lengths, VOCAB, config, lm=ForbiddingLM("O")))
    assert all("O" not in text for text in fused)
    assert fused != words and "O" in "".join(words)


def test_ctc_prefix_score_of_a_whole_sequence_is_its_ctc_probability() -> None:
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(1, 12, len(VOCAB)), dim=-1)
    sequence = VOCAB.encode("ABBA")  # a repeated letter needs a blank between
    scorer = CTCPrefixScorer(log_probs, torch.tensor([12]), VOCAB.blank_id, VOCAB.eos_id)
    for length, token in enumerate(sequence):
        candidates = torch.tensor([[token, VOCAB.eos_id]])
        scores = scorer.score(candidates, length)
        scorer.advance(torch.tensor([0]), torch.tensor([token]), scores[:, 0], length)
    scores = scorer.score(torch.tensor([[VOCAB.eos_id]]), len(sequence))
    expected = -F.ctc_loss(
        log_probs.transpose(0, 1), torch.tensor([sequence]), torch.tensor([12]), torch.tensor([4]), reduction="sum"
    )
    assert float(scores[0, 0]) == pytest.approx(float(expected), abs=1e-4)


def recursion_frame_by_frame(log_probs: torch.Tensor, lengths: torch.Tensor, prefixes: list[list[int]]) -> list:
    """r_n, r_b (T,) of each prefix, by Algorithm 2 of Watanabe et al. one frame after another (float64)."""
    x = log_probs.double()
    results = []
    for n, prefix in enumerate(prefixes):
        t_max, length = x.shape[1], int(lengths[n])
        emit = x[n].clone()
        emit[length:] = float("-inf")
        emit[length:, VOCAB.blank_id] = 0.0
        r_n = torch.full((t_max,), float("-inf"), dtype=torch.float64)
        r_b = torch.cumsum(emit[:, VOCAB.blank_id], 0)
        for i, c in enumerate(prefix):
            phi = r_b if i > 0 and prefix[i - 1] == c else torch.logaddexp(r_n, r_b)
            new_n = torch.full_like(r_n, float("-inf"))
            new_b = torch.full_like(r_b, float("-inf"))
            if i == 0:
                new_n[0] = emit[0, c]
            for t in range(max(1, i), t_max):
                new_n[t] = torch.logaddexp(new_n[t - 1], phi[t - 1]) + emit[t, c]
                new_b[t] = torch.logaddexp(new_b[t - 1], new_n[t - 1]) + emit[t, VOCAB.blank_id]
            r_n, r_b = new_n, new_b
        results.append((r_n, r_b))
    return results


def test_ctc_forward_variables_over_all_frames_at_once_equal_the_frame_by_frame_recursion() -> None:
    """Hypotheses of a padded batch (one of 600 frames, one cut short, one with a repeated letter,
    one longer than its frames allow) advanced token by token match the recursion run frame by frame."""
    torch.manual_seed(0)
    lengths = torch.tensor([600, 230, 40, 3])
    log_probs = torch.log_softmax(3 * torch.randn(4, 600, len(VOCAB)), dim=-1)
    prefixes = [VOCAB.encode(text) for text in ("HELLO", "ABBAB", "ZZZZZ", "ABCDE")]
    scorer = CTCPrefixScorer(log_probs, lengths, VOCAB.blank_id, VOCAB.eos_id)
    rows = torch.arange(4)
    for length in range(5):
        tokens = torch.tensor([prefix[length] for prefix in prefixes])
        scores = scorer.score(tokens[:, None], length)
        scorer.advance(rows, tokens, scores[:, 0], length)
    for n, (r_n, r_b) in enumerate(recursion_frame_by_frame(log_probs, lengths, prefixes)):
        for got, expected in ((scorer.r_n[:, n], r_n), (scorer.r_b[:, n], r_b)):
            finite = torch.isfinite(expected)
            assert torch.equal(torch.isfinite(got), finite), n
            torch.testing.assert_close(got[finite].double(), expected[finite], atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_an_untrained_model_on_real_audio_stops_where_the_audio_does(fsdd, search) -> None:
    """A model that never says EOS must stop at `max_chars_per_second` of its audio, not run on."""
    torch.manual_seed(3)
    model = LAS(tiny("location")).eval()
    with torch.no_grad():
        model.speller.output.bias[VOCAB.eos_id] -= 20  # never ends by itself
    features, lengths, _, _, _ = digits(fsdd)
    config = SearchConfig(beam=3, max_chars_per_second=15.0, ctc_weight=0.0)
    for hypothesis, frames in zip(search(model, features, lengths, VOCAB, config), lengths.tolist(), strict=True):
        assert len(hypothesis.tokens) == int(frames * 0.01 * 15.0)  # 15 characters a second, 10 ms frames


def test_the_greedy_ctc_path_merges_repeats_drops_blanks_and_stops_at_the_frames() -> None:
    blank, a, b = VOCAB.blank_id, *VOCAB.encode("AB")
    paths = torch.tensor([[a, a, blank, a, b, b, blank, b], [b, blank, blank, a, a, b, b, b]])
    log_probs = torch.log(F.one_hot(paths, len(VOCAB)).float() * 0.9 + 0.1 / len(VOCAB))
    assert ctc_greedy_lengths(log_probs, torch.tensor([8, 4]), blank).tolist() == [4, 2]  # A A B B; B A
    assert ctc_greedy_lengths(log_probs[:, :0], torch.tensor([0, 0]), blank).tolist() == [0, 0]  # no frames


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_a_search_bounded_by_the_ctc_path_is_no_longer_than_it_allows(fsdd, search) -> None:
    """A speller that never says EOS runs to the bound from the CTC branch's greedy path, well
    before the bound from the duration; the same utterances decode alike alone and batched."""
    torch.manual_seed(3)
    model = LAS(tiny("location")).eval()
    with torch.no_grad():
        model.speller.output.bias[VOCAB.eos_id] -= 20  # never ends by itself
    features, lengths, _, _, _ = digits(fsdd)
    config = SearchConfig(beam=3, max_chars_per_second=40.0, max_ctc_length_ratio=0.5, ctc_length_margin=2)
    encoded, encoded_lengths = model.encode(features, lengths)
    path = ctc_greedy_lengths(model.ctc_log_probs(encoded), encoded_lengths, VOCAB.blank_id)
    bound = torch.minimum((path * 0.5).ceil().long() + 2, (lengths * 0.01 * 40.0).long())
    hypotheses = search(model, features, lengths, VOCAB, config)
    assert [len(h.tokens) for h in hypotheses] == bound.tolist()
    assert (bound < (lengths * 0.01 * 40.0).long()).any()  # the CTC bound is the one that holds somewhere
    alone = [search(model, features[i : i + 1, : lengths[i]], lengths[i : i + 1], VOCAB, config)[0] for i in range(2)]
    assert [h.tokens for h in alone] == [h.tokens for h in hypotheses[:2]]


def test_bad_search_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="beam"):
        SearchConfig(beam=0)
    with pytest.raises(ValueError, match="min_length_ratio"):
        SearchConfig(min_length_ratio=2.0, max_length_ratio=1.0)
    with pytest.raises(ValueError, match="max_ctc_length_ratio"):
        SearchConfig(max_ctc_length_ratio=-1.0)


def test_coverage_penalty_rewards_frames_the_attention_covered(trained) -> None:
    model, features, lengths, words = trained
    plain = beam_search(model, features, lengths, VOCAB, SearchConfig(beam=3, keep_attention=True))
    covered = beam_search(model, features, lengths, VOCAB, SearchConfig(beam=3, coverage_penalty=0.5))
    for a, b in zip(plain, covered, strict=True):
        bonus_a = 0.5 * float((a.attention.sum(0) > 0.5).sum())
        if a.tokens == b.tokens:
            assert b.score == pytest.approx(a.score + bonus_a, abs=1e-4)
        else:  # another hypothesis won: it must beat the plain winner's penalised score
            assert b.score >= a.score + bonus_a - 1e-4


def test_beam_search_with_ctc_returns_a_finite_hypothesis_when_ctc_allows_only_eos() -> None:
    """Three listener frames hold at most three characters; with EOS made unlikely by the
    attention, the EOS rule must still see the joint scores and let the search end."""
    torch.manual_seed(0)
    model = LAS(tiny("location")).eval()
    with torch.no_grad():
        model.speller.output.bias[VOCAB.eos_id] -= 6
    features, lengths = torch.randn(1, 6, 80), torch.tensor([6])  # 6 frames -> 3 listener frames
    for candidates in (1, 2, 20):
        config = SearchConfig(beam=4, ctc_weight=0.3, ctc_candidates=candidates)
        (hypothesis,) = beam_search(model, features, lengths, VOCAB, config)
        assert math.isfinite(hypothesis.score) and math.isfinite(hypothesis.log_prob)
        assert 1 <= len(hypothesis.tokens) <= 3


def test_ctc_candidates_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="ctc_candidates must be at least 1"):
        SearchConfig(ctc_candidates=0)


@pytest.mark.parametrize(("search", "ctc_weight"), [(greedy_search, 0.0), (beam_search, 0.0), (beam_search, 0.3)])
def test_an_utterance_without_listener_frames_gets_an_empty_text_and_spares_the_others(search, ctc_weight) -> None:
    torch.manual_seed(0)
    model = LAS(tiny("location")).eval()
    features, lengths = torch.randn(2, 40, 80), torch.tensor([40, 0])  # a clip shorter than one window
    config = SearchConfig(beam=3, ctc_weight=ctc_weight, max_length_ratio=0.5, keep_attention=True)
    normal, empty = search(model, features, lengths, VOCAB, config)
    (alone,) = search(model, features[:1], lengths[:1], VOCAB, config)
    assert empty.text == "" and empty.tokens == () and math.isfinite(empty.score)
    assert normal.tokens == alone.tokens and normal.score == pytest.approx(alone.score, abs=1e-5)
    assert not torch.isnan(normal.attention).any() and not torch.isnan(empty.attention).any()


def test_the_repetition_guard_stops_a_fourth_saying_of_a_word_in_a_row() -> None:
    space, eos = VOCAB.space_id, VOCAB.eos_id
    guard = RepetitionGuard.start(1, torch.device("cpu"))
    for token in VOCAB.encode("FOR FOR FOR FOR"):
        guard = guard.advance(torch.tensor([0]), torch.tensor([token]), space)
    scores = guard.apply(torch.zeros(1, len(VOCAB)), limit=3, space=space, eos=eos)
    assert scores[0, space] == scores[0, eos] == float("-inf")  # "FOR" a fourth time may not end
    assert torch.isfinite(scores[0, VOCAB.encode("T")[0]])  # "FORT..." may go on
    other = RepetitionGuard.start(1, torch.device("cpu"))
    for token in VOCAB.encode("FOR THE FOR FOR"):
        other = other.advance(torch.tensor([0]), torch.tensor([token]), space)
    assert torch.isfinite(other.apply(torch.zeros(1, len(VOCAB)), limit=3, space=space, eos=eos)[0, space])


def test_a_model_that_loops_on_a_word_is_stopped_by_the_guard() -> None:
    """An untrained speller whose output always favours one short loop: the guard must cut it."""
    torch.manual_seed(0)
    model = LAS(tiny("location")).eval()
    loop = VOCAB.encode("AB ")
    with torch.no_grad():
        model.speller.output.weight.zero_()
        model.speller.output.bias.fill_(-5.0)
        model.speller.output.bias[loop] = 0.0  # A, B and space equally likely at every step
        model.speller.output.bias[VOCAB.eos_id] = -8.0
    features, lengths = torch.randn(1, 200, 80), torch.tensor([200])
    config = SearchConfig(beam=1, max_chars_per_second=20.0, max_word_repeats=2)
    (hypothesis,) = greedy_search(model, features, lengths, VOCAB, config)
    words = hypothesis.text.split()
    assert all(not (a == b == c) for a, b, c in zip(words, words[1:], words[2:], strict=False))


def ended(hypotheses: list[tuple[float, int, int]], step: int, config: SearchConfig) -> bool:
    """End detection for one utterance whose finished hypotheses are (log-probability, step, row)."""
    finished = Finished.start(1, 3, torch.device("cpu"))
    for log_prob, at, row in hypotheses:
        value = torch.tensor([[log_prob]])
        finished.add(torch.tensor([0]), torch.tensor([[True]]), value, value, at, torch.tensor([[row]]))
    return bool(finished.ended(torch.tensor([0]), step, config))


def test_end_detection_stops_when_recent_endings_are_far_worse() -> None:
    config = SearchConfig(end_detect=True, end_window=2, end_margin=5.0)
    finished = [(-3.0, 4, 0), (-20.0, 9, 1), (-30.0, 10, 2)]
    assert ended(finished, 10, config)
    assert not ended(finished, 11, config)  # nothing ended at step 11
    assert not ended([(-3.0, 4, 0), (-6.0, 9, 1), (-30.0, 10, 2)], 10, config)  # step 9 is near the best
    assert not ended(finished, 10, SearchConfig(end_detect=False))


def test_a_length_bonus_lengthens_what_an_lm_would_cut_short(trained) -> None:
    model, features, lengths, _ = trained
    lm = ForbiddingLM("Q")
    plain = beam_search(model, features, lengths, VOCAB, SearchConfig(beam=3, lm_weight=2.0), lm=lm)
    bonus = beam_search(model, features, lengths, VOCAB, SearchConfig(beam=3, lm_weight=2.0, length_bonus=5.0), lm=lm)
    assert sum(len(h.tokens) for h in bonus) > sum(len(h.tokens) for h in plain)
