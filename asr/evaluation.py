"""`asr evaluate`: decode a manifest with a model directory and score it.

Writes `hyps.jsonl` (id, ref, hyp, per-utterance errors), `summary.json` (corpus WER
and CER in percent, the error counts, the real-time factor, every setting of the search,
how long utterances were decoded) and `report.txt` (the worst utterances, aligned).

An attention model decodes audio longer than it was trained on badly (LibriSpeech's test
sets hold utterances of up to 35 s, its training configs drop those over 20 s): on the
synthetic demo's held-out voices joined to 25-35 s, its model makes 84 % errors decoding
them whole, 56-61 % with an attention window, and as few as on its short utterances when
they are cut at pauses (recipes/synthetic/RESULTS.md). So by default an utterance longer
than the longest the model was trained on is cut at pauses into pieces no longer than that,
as `asr transcribe` cuts recordings (`asr.transcribe.Recognizer`), and its pieces' texts are
joined.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from asr.atomic import atomic_open, atomic_write_text, exclusive_folder
from asr.checkpoint import LoadedModel
from asr.config import to_dict
from asr.data.dataset import SpeechDataset, collate
from asr.data.manifest import Utterance, check_audio, read_manifest, text_notes
from asr.decoding.config import LanguageModel, SearchConfig
from asr.errors import UserError
from asr.frontend.audio import AudioError
from asr.frontend.segmentation import SegmenterConfig
from asr.progress import Track, no_progress
from asr.recognize import recognize
from asr.scoring import CorpusScore, group_scores, score, worst_report
from asr.text import TextConfig, normalize
from asr.transcribe import Recognizer, TranscribeConfig

LOADED_AT_ONCE = 64
"""Long utterances whose audio is in memory at once while they are decoded in pieces."""

log = logging.getLogger(__name__)


class EvaluationError(UserError):
    """A manifest that cannot be evaluated: no words to score, audio that cannot be read."""


def _check(manifest: str | Path, utterances: list[Utterance], jobs: int, text: TextConfig) -> list[Utterance]:
    """Before decoding anything: the references hold words, and every audio header can be read; what
    the model's normaliser (`text`) drops from the references (digits ...) is logged. Returns
    `utterances`, longest first, with the durations their audio contradicts corrected (logged with
    counts): which are cut at pauses, the batches and the real-time factor go by them."""
    if not any(normalize(u.text, text) for u in utterances):
        raise EvaluationError(f"{manifest}: no reference holds a word once normalised, so WER is undefined")
    for note in text_notes(utterances, "asr prepare --expand-numbers", text):
        log.warning("%s: reference %s; they are scored without them", manifest, note)
    empty = [u.id for u in utterances if not normalize(u.text, text)]
    if empty:
        log.warning(
            "%s: %d reference(s) hold no word once normalised (e.g. %s): scored as silence, every word "
            "heard there counts as an insertion",
            manifest,
            len(empty),
            empty[0],
        )
    checked = check_audio(utterances, threads=max(1, jobs) * 4)
    if checked.unreadable is not None:
        utterance, error = checked.unreadable
        raise EvaluationError(f"utterance {utterance.id}: {error}")
    if checked.corrected:
        log.warning("%s", checked.summary(manifest))
    return sorted(checked.utterances, key=lambda u: -u.duration)


@torch.no_grad()
def evaluate(
    loaded: LoadedModel,
    manifest: str | Path,
    out_dir: str | Path,
    search: SearchConfig,
    batch_size: int = 16,
    workers: int = 2,
    track: Track = no_progress,
    groups: Mapping[str, str] | None = None,
    lm: LanguageModel | None = None,
    max_seconds: float | None = None,
) -> CorpusScore:
    """Decode every utterance of `manifest` in batches (longest first), score, write the results.

    `groups` (speaker -> group name, e.g. "child" / "adult") adds each group's corpus-level
    score to summary.json and report.txt; `lm` is the LM for shallow fusion (`search.lm_weight`).
    Utterances longer than `max_seconds` (default: the longest the model was trained on; inf:
    none) are cut at pauses into pieces of at most that and decoded piece by piece.

    The real-time factor is decoding time (front end, listener and search; not audio
    loading) over audio duration. Holds `out_dir` exclusively while it runs. Raises
    `EvaluationError`, before decoding, for references without words or unreadable
    headers, and for audio that fails to decode (naming it).
    """
    with exclusive_folder(out_dir, "asr evaluate"):
        recognizer = Recognizer(loaded, lm)
        limit = recognizer.max_seconds if max_seconds is None else max_seconds
        return _evaluate(recognizer, manifest, Path(out_dir), search, batch_size, workers, track, groups or {}, limit)


def _evaluate(
    recognizer: Recognizer,
    manifest: str | Path,
    out: Path,
    search: SearchConfig,
    batch_size: int,
    workers: int,
    track: Track,
    groups: Mapping[str, str],
    max_seconds: float,
) -> CorpusScore:
    loaded, lm = recognizer.loaded, recognizer.lm
    text = loaded.vocab.text
    utterances = _check(manifest, read_manifest(manifest), workers, text)
    long = [u for u in utterances if u.duration > max_seconds]
    hyps, decoding_seconds, left_out = _decode_in_pieces(recognizer, long, search, batch_size, max_seconds, track)
    dataset = SpeechDataset(utterances[len(long) :], loaded.vocab)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=min(workers, len(utterances) - len(long)),  # no more workers than utterances to read
        collate_fn=functools.partial(collate, pad_id=loaded.vocab.pad_id),
    )
    for batch in track(loader, len(loader), "decoding"):
        if batch.failed:
            raise EvaluationError(f"{batch.failed[0]}; asr prepare ... --verify finds and leaves out such files")
        started = time.perf_counter()
        batch = batch.to(loaded.device)
        *_, hypotheses = recognize(
            loaded.model, loaded.frontend, batch.waveforms, batch.waveform_lengths, loaded.vocab, search, lm
        )
        if loaded.device.type == "cuda":
            torch.cuda.synchronize(loaded.device)
        decoding_seconds += time.perf_counter() - started
        hyps.update({utterance_id: h.text for utterance_id, h in zip(batch.ids, hypotheses, strict=True)})
    ordered = sorted(utterances, key=lambda u: u.id)
    refs = [u.text for u in ordered]
    corpus, per_utterance = score([u.id for u in ordered], refs, [hyps[u.id] for u in ordered], text)
    with atomic_open(out / "hyps.jsonl") as handle:
        for u in per_utterance:
            record = {"id": u.id, "ref": u.ref, "hyp": u.hyp, "words": u.words, "errors": u.errors}
            record.update(substitutions=u.substitutions, deletions=u.deletions, insertions=u.insertions)
            handle.write(json.dumps(record) + "\n")
    audio_seconds = sum(u.duration for u in utterances)
    summary = corpus.to_dict() | {
        "rtf": decoding_seconds / audio_seconds,
        "search": to_dict(search),
        "text": to_dict(text),
        "cut_at_pauses": {
            "longer_than_seconds": max_seconds if math.isfinite(max_seconds) else None,
            "utterances": len(long),
            "seconds_judged_silent": round(left_out, 2),
        },
    }
    group_of = {u.id: groups[u.speaker] for u in utterances if u.speaker in groups}
    by_group = group_scores(per_utterance, group_of, text.metric)
    lines = [corpus.summary()] + [f"{name}: {score.summary()}" for name, score in by_group.items()]
    if by_group:
        summary["groups"] = {name: score.to_dict() for name, score in by_group.items()}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / "report.txt", "\n".join(lines) + "\n\n" + worst_report(per_utterance))
    return corpus


def _decode_in_pieces(
    recognizer: Recognizer,
    utterances: list[Utterance],
    search: SearchConfig,
    batch_size: int,
    max_seconds: float,
    track: Track,
) -> tuple[dict[str, str], float, float]:
    """Each utterance's text decoded in pieces cut at pauses, at most `max_seconds` long; the seconds
    the decoding took (not the audio loading); the seconds of audio in no piece (judged silent).
    Loads `LOADED_AT_ONCE` utterances at a time."""
    config = TranscribeConfig(search=search, batch_size=batch_size, segmenter=SegmenterConfig(max_seconds=max_seconds))
    hyps: dict[str, str] = {}
    seconds = left_out = 0.0
    groups = [utterances[i : i + LOADED_AT_ONCE] for i in range(0, len(utterances), LOADED_AT_ONCE)]
    for group in track(groups, len(groups), "decoding long utterances in pieces"):
        waveforms = [u.load() for u in group]
        started = time.perf_counter()
        for index, result in recognizer.transcribe_all(waveforms, config):
            if isinstance(result, AudioError):
                raise EvaluationError(f"utterance {group[index].id}: {result}")
            hyps[group[index].id] = result.text
            left_out += result.left_out
        seconds += time.perf_counter() - started
    return hyps, seconds, left_out
