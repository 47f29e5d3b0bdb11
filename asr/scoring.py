"""Word and character error rates through jiwer, with the error breakdown and aligned printouts.

Both sides pass through the model's normaliser first (`TextConfig`, english unless told).
Rates are corpus-level: total errors over total reference words (or characters), not a mean
of per-utterance rates. Both rates are always counted; `TextConfig.metric` says which one is
the figure that means something (CER where words are not written apart: Mandarin, Japanese).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import jiwer

from asr.text import ENGLISH, TextConfig, normalize


@dataclass(frozen=True)
class UtteranceScore:
    """One utterance's normalised reference and hypothesis and its word-level errors."""

    id: str
    ref: str
    hyp: str
    words: int
    substitutions: int
    deletions: int
    insertions: int
    char_errors: int
    char_insertions: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def aligned(self) -> str:
        """Three lines: REF, HYP and a row of S/D/I marks, word columns aligned."""
        return align(self.ref, self.hyp)


@dataclass(frozen=True)
class CorpusScore:
    """Corpus-level WER and CER in percent, with the counts behind them."""

    wer: float
    cer: float
    utterances: int
    words: int
    substitutions: int
    deletions: int
    insertions: int
    chars: int
    char_errors: int
    char_insertions: int = 0
    metric: str = "wer"
    """The primary figure, wer or cer (`TextConfig.metric`)."""

    @property
    def insertion_rate(self) -> float:
        """Inserted words per hundred reference words, or inserted characters per hundred reference
        characters where the primary figure is CER."""
        if self.metric == "cer":
            return 100 * self.char_insertions / max(self.chars, 1)
        return 100 * self.insertions / self.words

    @property
    def primary(self) -> float:
        """The rate `metric` names, in percent."""
        return self.cer if self.metric == "cer" else self.wer

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    def summary(self) -> str:
        """One line, the primary figure first, e.g. `WER 5.21% (S 40, D 9, I 3 / 998 words), CER 2.10%,
        100 utterances` or `CER 8.40% (31 errors, I 5 / 369 characters), WER 41.00%, 20 utterances`."""
        errors = f"S {self.substitutions}, D {self.deletions}, I {self.insertions} / {self.words} words"
        if self.metric == "cer":
            characters = f"{self.char_errors} errors, I {self.char_insertions} / {self.chars} characters"
            return f"CER {self.cer:.2f}% ({characters}), WER {self.wer:.2f}%, {self.utterances} utterances"
        return f"WER {self.wer:.2f}% ({errors}), CER {self.cer:.2f}%, {self.utterances} utterances"


def _counts(chunks: Sequence[jiwer.AlignmentChunk]) -> tuple[int, int, int]:
    """Substitutions, deletions and insertions of one sentence's alignment."""
    s = d = i = 0
    for chunk in chunks:
        if chunk.type == "substitute":
            s += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "delete":
            d += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "insert":
            i += chunk.hyp_end_idx - chunk.hyp_start_idx
    return s, d, i


def score(
    ids: Sequence[str], refs: Sequence[str], hyps: Sequence[str], text: TextConfig = ENGLISH
) -> tuple[CorpusScore, list[UtteranceScore]]:
    """Normalise both sides by `text`'s normaliser and score them; returns the corpus score (its
    primary figure `text.metric`) and one record per utterance.

    Raises ValueError if the lengths differ or the references hold no words at all.
    """
    if not len(ids) == len(refs) == len(hyps):
        raise ValueError(f"need as many ids, references and hypotheses; got {len(ids)}, {len(refs)}, {len(hyps)}")
    refs = [normalize(r, text) for r in refs]
    hyps = [normalize(h, text) for h in hyps]
    words = sum(len(r.split()) for r in refs)
    if words == 0:
        raise ValueError("the references hold no words, so WER is undefined")
    word_output = jiwer.process_words(refs, hyps)
    char_output = jiwer.process_characters(refs, hyps)
    utterances = []
    for i, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        s, d, ins = _counts(word_output.alignments[i])
        cs, cd, ci = _counts(char_output.alignments[i])
        utterances.append(UtteranceScore(ids[i], ref, hyp, len(ref.split()), s, d, ins, cs + cd + ci, ci))
    corpus = _corpus(utterances, text.metric)
    return corpus, utterances


def group_scores(
    utterances: Sequence[UtteranceScore], group_of: Mapping[str, str], metric: str = "wer"
) -> dict[str, CorpusScore]:
    """Corpus-level scores of each group of utterances (`group_of`: utterance id -> group name),
    in group-name order; utterances without a group are left out."""
    groups: dict[str, list[UtteranceScore]] = {}
    for u in utterances:
        if u.id in group_of:
            groups.setdefault(group_of[u.id], []).append(u)
    return {name: _corpus(groups[name], metric) for name in sorted(groups)}


def _corpus(utterances: Sequence[UtteranceScore], metric: str) -> CorpusScore:
    """The corpus-level score of already scored utterances."""
    words = sum(u.words for u in utterances)
    chars = sum(len(u.ref) for u in utterances)
    s, d, i = (sum(getattr(u, key) for u in utterances) for key in ("substitutions", "deletions", "insertions"))
    char_errors = sum(u.char_errors for u in utterances)
    return CorpusScore(
        wer=100.0 * (s + d + i) / max(words, 1),
        cer=100.0 * char_errors / max(chars, 1),
        utterances=len(utterances),
        words=words,
        substitutions=s,
        deletions=d,
        insertions=i,
        chars=chars,
        char_errors=char_errors,
        char_insertions=sum(u.char_insertions for u in utterances),
        metric=metric,
    )


def align(ref: str, hyp: str) -> str:
    """REF / HYP / marks lines of a word alignment; `*` fills the gaps of deletions and insertions."""
    ref_words, hyp_words = ref.split(), hyp.split()
    columns: list[tuple[str, str, str]] = []
    chunks = jiwer.process_words(ref, hyp).alignments[0] if ref_words or hyp_words else []
    for chunk in chunks:
        r = ref_words[chunk.ref_start_idx : chunk.ref_end_idx]
        h = hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if chunk.type == "insert":
            columns += [("*" * len(w), w, "I") for w in h]
        elif chunk.type == "delete":
            columns += [(w, "*" * len(w), "D") for w in r]
        else:
            mark = "S" if chunk.type == "substitute" else ""
            columns += [(a, b, mark) for a, b in zip(r, h, strict=True)]
    widths = [max(len(a), len(b), len(m)) for a, b, m in columns]
    rows = [" ".join(column[k].ljust(w) for column, w in zip(columns, widths, strict=True)) for k in range(3)]
    return f"REF: {rows[0]}\nHYP: {rows[1]}\n     {rows[2]}".rstrip()


def worst_report(utterances: Sequence[UtteranceScore], count: int = 20) -> str:
    """A text report of the `count` utterances with the most word errors, aligned."""
    worst = sorted((u for u in utterances if u.errors), key=lambda u: (-u.errors, u.id))[:count]
    blocks = [f"{u.id}: {u.errors} errors / {u.words} words\n{u.aligned()}" for u in worst]
    return "\n\n".join(blocks) + "\n" if blocks else "no errors\n"
