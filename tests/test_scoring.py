import pytest

from asr.scoring import align, score, worst_report


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
