"""Transcribing recordings with a model directory: the Python API behind `asr transcribe`.

    import asr
    model = asr.load_model("exp/demo/model")      # device="auto": a GPU if there is one
    result = model.transcribe("speech.flac")      # or a waveform: model.transcribe(array, sample_rate=8000)
    print(result.text)
    for segment in result.segments:
        print(f"{segment.start:.2f}-{segment.end:.2f} {segment.text}")

A recording no longer than the longest utterance the model was trained on is decoded
whole, or sentence by sentence where it holds pauses that end one (a model trained on single
sentences would stop spelling at the first); a longer one is cut at pauses
(`asr.frontend.segmentation`). Pieces are decoded in batches, sorted by length together with
those of other recordings. Memory stays
bounded: a long file is read piece by piece, and at most `pool_pieces` pieces wait.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.checkpoint import LoadedModel, load_model_dir
from asr.decoding.config import Hypothesis, LanguageModel, SearchConfig
from asr.device import choose_device
from asr.errors import UserError
from asr.frontend.audio import (
    SAMPLE_RATE,
    AudioError,
    audio_blocks,
    audio_info,
    check_level,
    check_sample_rate,
    load_audio,
    mix_down,
    resample,
)
from asr.frontend.segmentation import SegmenterConfig, find_segments, frame_levels, short_spans
from asr.lm import load_lm
from asr.recognize import decoding_section, int8_model, recognize, search_settings

AudioInput = str | os.PathLike | np.ndarray | torch.Tensor
"""A file path, or a waveform: (N,) samples, or (N, C) / (C, N) with the channels on the shorter axis."""

MIN_PIECE_SECONDS = 0.1
"""Shorter pieces (or recordings) are not decoded: they give an empty segment."""


class TranscribeError(UserError):
    """Transcription settings that cannot be used."""


@dataclass(frozen=True)
class Word:
    """A word and its estimated time span in seconds from the start of the recording."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """A decoded piece: its time span (seconds), text, the search's log-probability per output
    character, and its words when word timestamps were asked for."""

    start: float
    end: float
    text: str
    avg_log_prob: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """One recording's result: `source` names it (the path, or "<waveform N>"); `duration` in seconds;
    `left_out`: the seconds of it that no decoded piece covers (judged silent, or too short to decode)."""

    source: str
    duration: float
    segments: tuple[Segment, ...]
    left_out: float = 0.0

    @property
    def text(self) -> str:
        """The segments' texts joined by spaces."""
        return " ".join(segment.text for segment in self.segments if segment.text)


@dataclass(frozen=True)
class Alignment:
    """A decoded piece for plotting: its span (seconds), the hypothesis with its attention
    (characters + 1, T'), the features (T, D) the listener heard and the seconds between two
    of their frames (the hop)."""

    start: float
    end: float
    hypothesis: Hypothesis
    features: torch.Tensor
    frame_seconds: float


@dataclass(frozen=True)
class TranscribeConfig:
    """How to decode: the search, how many pieces a batch holds, how long audio is cut,
    how many pieces may wait to be sorted by length (bounds memory), word timestamps."""

    search: SearchConfig = field(default_factory=SearchConfig)
    batch_size: int = 16
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    pool_pieces: int = 64
    word_timestamps: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.pool_pieces < 1:
            raise ValueError("batch_size and pool_pieces must be at least 1")


@dataclass(frozen=True)
class _Recording:
    """A recording ready to be cut: its pieces' spans (seconds) and a reader of any span."""

    name: str
    duration: float
    spans: list[tuple[float, float]]
    read: Callable[[float, float], torch.Tensor]


@dataclass(frozen=True)
class _Piece:
    recording: int
    index: int
    start: float
    end: float
    waveform: torch.Tensor


def _waveform(audio: np.ndarray | torch.Tensor, sample_rate: int, name: str) -> torch.Tensor:
    """A caller's array -> mono float32 (N,) at SAMPLE_RATE, or AudioError naming it."""
    waveform = torch.as_tensor(np.asarray(audio) if not isinstance(audio, torch.Tensor) else audio)
    if waveform.dim() == 2:  # (N, C) or (C, N): the channels on the shorter axis
        channels_first = int(torch.tensor(waveform.shape).argmin()) == 0
        waveform = mix_down(waveform.float().T if channels_first else waveform.float(), name)
    if waveform.dim() != 1:
        raise AudioError(f"{name}: expected (N,) samples or (N, C) / (C, N), got shape {tuple(waveform.shape)}")
    if waveform.numel() == 0:
        raise AudioError(f"{name}: 0 samples")
    check_sample_rate(sample_rate, name)
    waveform = waveform.float()
    if not torch.isfinite(waveform).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    check_level(waveform, name)
    return resample(waveform, sample_rate, SAMPLE_RATE)


def _spans(
    duration: float, blocks: Callable[[], Iterable[tuple[torch.Tensor, int]]], config: SegmenterConfig
) -> list[tuple[float, float]]:
    """The pieces (seconds) of a recording of `duration` s: cut at pauses; one that fits in one piece
    only at pauses that end a sentence (`short_spans`)."""
    if duration <= config.max_seconds:
        if math.isinf(config.sentence_pause_seconds) or math.isinf(config.max_seconds):  # never cut
            return [(0.0, duration)]
        spans = short_spans(frame_levels(blocks(), config.frame_seconds), config)
        return [(0.0, duration)] if len(spans) == 1 else spans
    return find_segments(frame_levels(blocks(), config.frame_seconds), config)


class _InOrder:
    """The transcripts of one `Recognizer.transcribe_all` call, given out in input order: a
    recording's once all its pieces are decoded, or the error that stopped it."""

    def __init__(self, progress: Callable[[float], None] | None) -> None:
        self.progress = progress
        self.segments: dict[int, list[Segment | None]] = {}  # None: a piece not decoded yet
        self.recordings: dict[int, _Recording] = {}
        self.failed: dict[int, AudioError] = {}
        self.decoded_seconds: dict[int, float] = {}
        self.next = 0  # the index of the next recording to give out

    def add(self, index: int, recording: _Recording) -> None:
        self.recordings[index] = recording
        self.segments[index] = [None] * len(recording.spans)

    def fail(self, index: int, error: AudioError) -> None:
        self.failed[index] = error
        self.recordings.pop(index, None)

    def decoded(self, index: int, number: int, segment: Segment, seconds: float) -> None:
        """Piece `number` of recording `index`, `seconds` of audio, is `segment` (ignored if the recording failed)."""
        if index not in self.segments or index in self.failed:
            return
        self.segments[index][number] = segment
        self.decoded_seconds[index] = self.decoded_seconds.get(index, 0.0) + seconds
        if self.progress is not None and seconds:
            self.progress(seconds)

    def done(self) -> Iterator[tuple[int, Transcript | AudioError]]:
        """(index, transcript or error) of each recording, in order, as far as all are complete."""
        while self.next in self.failed or (self.next in self.segments and None not in self.segments[self.next]):
            index = self.next
            self.next += 1
            segments = self.segments.pop(index, [])
            decoded = self.decoded_seconds.pop(index, 0.0)
            if index in self.failed:
                yield index, self.failed.pop(index)
                continue
            recording = self.recordings.pop(index)
            if self.progress is not None:  # what was judged silence, or too short to decode
                self.progress(recording.duration - decoded)
            found = tuple(s for s in segments if s is not None and s.text)
            yield index, Transcript(recording.name, recording.duration, found, max(0.0, recording.duration - decoded))


class Recognizer:
    """A loaded model directory that transcribes files and waveforms (see the module's example)."""

    def __init__(self, loaded: LoadedModel, lm: LanguageModel | None = None) -> None:
        """Raises `DecodingError` for a model directory whose decoding section is not a `SearchConfig`."""
        self.loaded = loaded
        self.lm = lm
        self.search = decoding_section(loaded.decoding)
        """The model's own search (its decoding section), read once; `config()` starts from it."""
        longest = loaded.longest_utterance_seconds
        self.max_seconds = max(SegmenterConfig.max_seconds if longest is None else math.ceil(longest), 1.0)
        listener = loaded.model.config.listener
        self.frame_seconds = loaded.features.hop_ms / 1000 * listener.subsampling  # one listener frame

    def config(
        self,
        batch_size: int = 16,
        max_seconds: float | None = None,
        word_timestamps: bool = False,
        search: SearchConfig | None = None,
        sentence_pause: float | None = None,
        **overrides: Any,
    ) -> TranscribeConfig:
        """`search` (default: the model's own, `self.search`) with the `overrides` by `SearchConfig`
        field name (beam=..., attention_window=... in listener frames; None keeps the setting).
        `sentence_pause`: the pause in seconds at which a recording shorter than `max_seconds` is
        cut (`SegmenterConfig.sentence_pause_seconds`; math.inf: never, the whole of it in one).

        Raises `DecodingError` for settings the model cannot use, `TranscribeError` for the rest.
        """
        loaded = self.loaded
        try:
            return TranscribeConfig(
                search=search_settings(search or self.search, loaded.model, self.lm, **overrides),
                batch_size=batch_size,
                segmenter=SegmenterConfig(
                    max_seconds=max_seconds or self.max_seconds,
                    sentence_pause_seconds=sentence_pause or SegmenterConfig.sentence_pause_seconds,
                ),
                word_timestamps=word_timestamps,
            )
        except ValueError as error:
            raise TranscribeError(str(error)) from None

    def transcribe(self, audio: AudioInput, sample_rate: int = SAMPLE_RATE, **options: Any) -> Transcript:
        """Transcribe one file or waveform (`sample_rate` in Hz applies to waveforms).

        `options` are those of `config()`. Raises `AudioError` for an unusable recording.
        """
        return self.transcribe_batch([audio], sample_rate, **options)[0]

    def transcribe_batch(
        self, audios: Sequence[AudioInput], sample_rate: int = SAMPLE_RATE, **options: Any
    ) -> list[Transcript]:
        """Transcribe several files or waveforms together, in their order; raises the first `AudioError`."""
        results: list[Transcript] = []
        for _, result in self.transcribe_all(audios, self.config(**options), sample_rate):
            if isinstance(result, AudioError):
                raise result
            results.append(result)
        return results

    def transcribe_all(
        self,
        audios: Sequence[AudioInput],
        config: TranscribeConfig,
        sample_rate: int = SAMPLE_RATE,
        progress: Callable[[float], None] | None = None,
    ) -> Iterator[tuple[int, Transcript | AudioError]]:
        """(index, transcript or the error that stopped it) for each recording, in input order.

        A bad recording does not stop the others. `progress(seconds)` is called as audio
        is done; it adds up to the total duration of the recordings that succeed.
        Segments whose text is empty (silence, pieces too short to decode) are left out.
        """
        transcripts = _InOrder(progress)
        pool: list[_Piece] = []
        for index, audio in enumerate(audios):
            try:
                recording = self._prepare(audio, index, sample_rate, config.segmenter)
                transcripts.add(index, recording)
                for number, (start, end) in enumerate(recording.spans):
                    waveform = recording.read(start, end)
                    if end - start < MIN_PIECE_SECONDS:  # too short to decode: no text
                        transcripts.decoded(index, number, Segment(start, end, "", -math.inf), seconds=0.0)
                        continue
                    pool.append(_Piece(index, number, start, end, waveform))
                    if len(pool) >= config.pool_pieces:
                        self._decode_pool(pool, config, transcripts)
                        yield from transcripts.done()
            except AudioError as error:
                transcripts.fail(index, error)
            yield from transcripts.done()
        self._decode_pool(pool, config, transcripts)
        yield from transcripts.done()

    def _decode_pool(self, pool: list[_Piece], config: TranscribeConfig, transcripts: _InOrder) -> None:
        """Decode the pieces of `pool` in batches of similar length and empty it."""
        pool.sort(key=lambda piece: -piece.waveform.shape[0])
        for start in range(0, len(pool), config.batch_size):
            batch = pool[start : start + config.batch_size]
            _, _, hypotheses = self._decode(batch, config.search)
            for piece, hypothesis in zip(batch, hypotheses, strict=True):
                segment = self._segment(piece, hypothesis, config)
                transcripts.decoded(piece.recording, piece.index, segment, seconds=piece.end - piece.start)
        pool.clear()

    def _prepare(self, audio: AudioInput, index: int, sample_rate: int, config: SegmenterConfig) -> _Recording:
        """A file is read block by block to find its pieces and then piece by piece; a waveform is
        converted to 16 kHz mono once."""
        if isinstance(audio, str | os.PathLike):
            path = Path(audio)
            duration = audio_info(path).duration
            spans = _spans(duration, lambda: audio_blocks(path), config)
            return _Recording(str(path), duration, spans, lambda start, end: load_audio(path, start, end - start)[0])
        name = f"<waveform {index}>"
        waveform = _waveform(audio, sample_rate, name)
        duration = waveform.shape[0] / SAMPLE_RATE
        spans = _spans(duration, lambda: [(waveform, SAMPLE_RATE)], config)
        return _Recording(
            name, duration, spans, lambda start, end: waveform[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]
        )

    def align(self, audio: AudioInput, sample_rate: int = SAMPLE_RATE, **overrides: Any) -> Alignment:
        """Decode the first piece of a recording (all of it when it is short) for an alignment plot,
        with the model's search and the `overrides` by `SearchConfig` field name, as `config()`."""
        config = self.config(**overrides)
        recording = self._prepare(audio, 0, sample_rate, config.segmenter)
        if not recording.spans:
            raise AudioError(f"{recording.name}: no speech found (the recording is silent)")
        start, end = recording.spans[0]
        piece = _Piece(0, 0, start, end, recording.read(start, end))
        search = dataclasses.replace(config.search, keep_attention=True)  # the plot draws the weights
        features, lengths, (hypothesis,) = self._decode([piece], search)
        hop = self.loaded.features.hop_ms / 1000
        return Alignment(start, end, hypothesis, features[0, : lengths[0]].float().cpu(), hop)

    @torch.no_grad()
    def _decode(
        self, pieces: Sequence[_Piece], search: SearchConfig
    ) -> tuple[torch.Tensor, torch.Tensor, list[Hypothesis]]:
        """A batch of pieces: padded waveforms -> features (B, T, D), lengths (B,) -> listener -> search."""
        loaded = self.loaded
        lengths = torch.tensor([piece.waveform.shape[0] for piece in pieces])
        waveforms = torch.nn.utils.rnn.pad_sequence([piece.waveform for piece in pieces], batch_first=True)
        device = loaded.device
        return recognize(
            loaded.model, loaded.frontend, waveforms.to(device), lengths.to(device), loaded.vocab, search, self.lm
        )

    def _segment(self, piece: _Piece, hypothesis: Hypothesis, config: TranscribeConfig) -> Segment:
        words = self._words(piece, hypothesis) if config.word_timestamps else ()
        text = self.loaded.vocab.normalize(hypothesis.text)
        return Segment(piece.start, piece.end, text, hypothesis.avg_log_prob, words)

    def _words(self, piece: _Piece, hypothesis: Hypothesis) -> tuple[Word, ...]:
        """Word spans from attention: each character's peak listener frame, mapped to seconds. In a
        script written without spaces (`TextConfig.spaces` false) each character is a word."""
        normalize = self.loaded.vocab.normalize
        peaks = hypothesis.peaks[: len(hypothesis.text)].numpy()  # (characters,) frame indices
        peaks = np.maximum.accumulate(peaks) if len(peaks) else peaks  # a later character never goes back in time
        matches = list(re.finditer(r"\S+" if self.loaded.vocab.text.spaces else r"\S", hypothesis.text))
        starts = [piece.start + peaks[m.start()] * self.frame_seconds for m in matches]
        ends = [piece.start + (peaks[m.end() - 1] + 1) * self.frame_seconds for m in matches]
        ends = [min(end, next_start) for end, next_start in zip(ends, [*starts[1:], piece.end], strict=True)]
        return tuple(
            Word(normalize(m.group()), min(float(start), piece.end), float(end))
            for m, start, end in zip(matches, starts, ends, strict=True)
            if normalize(m.group())  # a lone apostrophe is no word
        )


def load_model(
    directory: str | os.PathLike, device: str = "auto", lm: str | os.PathLike | None = None, int8: bool = False
) -> Recognizer:
    """Load a model directory (no pickle) for transcription on `device` (auto, cpu, cuda, cuda:N),
    with the character LM directory `lm` for shallow fusion (its weight: `lm_weight=` in the
    transcribe calls, or the model's decoding section); `int8`: int8 weights, for a CPU
    (`asr.recognize.quantized`).

    Raises `CheckpointError` for a folder that is not a model directory, `LMDirectoryError` for
    one that is not an LM directory, `VocabularyError` for an LM over other characters.
    """
    loaded = load_model_dir(directory, choose_device(device))
    if int8:
        loaded = int8_model(loaded)
    language_model = load_lm(lm, loaded.device, loaded.vocab) if lm is not None else None
    return Recognizer(loaded, language_model)
