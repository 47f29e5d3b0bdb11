import pytest

from asr.scoring import align, score, worst_report
from asr.text import TextConfig


def test_wer_is_corpus_level_not_a_mean_of_utterance_rates() -> None:
    corpus, _ = score(["a", "b"], ["ONE", "TWO THREE FOUR FIVE"], ["WON", "TWO THREE FOUR FIVE"])
    assert corpus.wer == pytest.approx(100 * 1 / 5)  # a mean of per-utterance rates would give 50 %
    assert (corpus.words, corpus.substitutions, corpus.deletions, corpus.insertions) == (5, 1, 0, 0)


def test_both_sides_are_normalised_the_same_way() -> None:
    corpus, utterances = score(["a"], ["Hello, world!"], ["hello world"])
    assert corpus.wer == 0 and corpus.cer == 0
    assert utterances[0].ref == utterances[0].hyp == "HELLO WORLD"


def test_errors_are_broken_down_per_utterance_and_in_total() -> None:
    corpus, utterances = score(
        ["sub", "del", "ins", "empty-hyp"], ["A B C", "A B C", "A B", "X Y"], ["A Z C", "A C", "A B Q R", ""]
    )
    counts = [(u.substitutions, u.deletions, u.insertions) for u in utterances]
    assert counts == [(1, 0, 0), (0, 1, 0), (0, 0, 2), (0, 2, 0)]
    assert (corpus.substitutions, corpus.deletions, corpus.insertions) == (1, 3, 2)
    assert corpus.wer == pytest.approx(100 * 6 / 10)
    assert corpus.chars == len("A B C") * 2 + len("A B") + len("X Y")
    assert corpus.cer == pytest.approx(100 * corpus.char_errors / corpus.chars)
    assert utterances[1].char_errors == 2  # "A B C" -> "A C": one letter and one space


def test_an_empty_reference_counts_insertions() -> None:
    corpus, utterances = score(["a", "b"], ["", "ONE TWO"], ["NOISE", "ONE TWO"])
    assert utterances[0].insertions == 1 and corpus.wer == pytest.approx(50.0)


def test_scoring_refuses_references_without_words() -> None:
    with pytest.raises(ValueError, match="no words"):
        score(["a"], [""], ["X"])
    with pytest.raises(ValueError, match="as many"):
        score(["a"], ["A"], [])


def test_alignment_printout_lines_up_words() -> None:
    text = align("THE CAT SAT", "THE BAT SAT DOWN")
    ref, hyp, marks = text.split("\n")
    assert ref == "REF: THE CAT SAT ****"
    assert hyp == "HYP: THE BAT SAT DOWN"
    assert marks == "         S       I"
    assert align("", "") == "REF: \nHYP:"


def test_worst_report_lists_the_worst_first() -> None:
    _, utterances = score(["good", "bad", "worse"], ["A B", "A B", "A B"], ["A B", "A C", "C D E"])
    report = worst_report(utterances, count=2)
    assert report.index("worse: 3 errors") < report.index("bad: 1 errors")
    assert "good" not in report


def test_a_mandarin_sentence_is_scored_by_characters_and_says_cer_first() -> None:
    """Without spaces between words a sentence is one "word", so WER says only whether it is all
    right; CER (one wrong character of six, one inserted) is the primary figure."""
    text = TextConfig("unicode", spaces=False, metric="cer")
    corpus, (utterance,) = score(["u1"], ["今天 天气 很好。"], ["今天天汽不很好"], text)
    assert utterance.ref == "今天天气很好" and utterance.char_errors == 2 and utterance.char_insertions == 1
    assert corpus.metric == "cer" and corpus.primary == corpus.cer == pytest.approx(100 * 2 / 6)
    assert corpus.insertion_rate == pytest.approx(100 / 6)  # characters inserted per hundred reference characters
    assert corpus.summary().startswith("CER 33.33% (2 errors, I 1 / 6 characters), WER 100.00%")
    assert corpus.to_dict()["metric"] == "cer"


def test_a_german_reference_keeps_its_umlauts_under_the_unicode_normalizer() -> None:
    corpus, (utterance,) = score(["u1"], ["Süße Grüße!"], ["süsse grüße"], TextConfig("unicode"))
    assert (utterance.ref, utterance.hyp, utterance.substitutions) == ("süße grüße", "süsse grüße", 1)
    assert corpus.metric == "wer" and corpus.summary().startswith("WER 50.00%")
