"""Cutting long recordings at pauses into pieces the model can decode, with an energy detector.

No model is needed: a frame is speech when its level lies halfway from the recording's
noise level to its speech level, or `quiet_speech_db` above the noise, whichever is
lower: a quiet talker next to a loud one is heard as long as they stand out from the
noise. Every pause long enough to end a sentence ends a piece (a model trained on single
sentences decodes them best one at a time), and a stretch of speech longer than
`max_seconds` is cut at its quietest moment. What lies in no piece is left out as silence;
`asr.transcribe` counts it.

Long files are read twice: once streamed, to compute the levels (8 bytes per 10 ms,
2.9 MB an hour of audio), then piece by piece, seeking. Memory stays bounded by one
block of audio and one piece, whatever the file's length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

DIGITAL_SILENCE_DBFS = -90.0
"""Frames quieter than this are zeros or dither (16-bit dither lies near -100 dBFS), not a room's noise."""


@dataclass(frozen=True)
class SegmenterConfig:
    """How recordings are cut. Times in seconds, levels in dB (full scale 0 dBFS).

    `max_seconds`: the longest piece (by default the model directory says what it was
    trained on). A stretch of silence of `min_pause_seconds` or more separates
    pieces; speech stretches shorter than `min_speech_seconds` (clicks) are dropped;
    `margin_seconds` of the surrounding audio is kept on either side of the speech.
    The silence threshold lies halfway between the noise level (`noise_percentile` of
    the frame levels; `floor_dbfs` where that is digital silence) and the speech level
    (`speech_percentile` of the frames `min_contrast_db` above the noise, when they last
    `min_speech_seconds`; else of all frames),
    and at most `quiet_speech_db` above the noise level (a word 26 dB below the loudest
    speech is still speech); when the two are less than `min_contrast_db` apart (steady
    noise, music) every frame counts as speech, and pieces are cut at the quietest moments only.
    A recording whose speech level is at most `floor_dbfs` holds no speech.
    """

    max_seconds: float = 20.0
    min_pause_seconds: float = 0.5
    sentence_pause_seconds: float = 0.8
    """A recording no longer than `max_seconds` is still cut at pauses this long (`short_spans`):
    a model trained on single sentences ends its spelling at the first sentence's end."""
    min_speech_seconds: float = 0.1
    margin_seconds: float = 0.2
    frame_seconds: float = 0.01
    noise_percentile: float = 10.0
    speech_percentile: float = 95.0
    floor_dbfs: float = -60.0
    min_contrast_db: float = 6.0
    quiet_speech_db: float = 12.0

    def __post_init__(self) -> None:
        if self.max_seconds < 1.0:
            raise ValueError(f"max_seconds must be at least 1 s, got {self.max_seconds}")
        if self.frame_seconds <= 0 or min(self.min_pause_seconds, self.min_speech_seconds, self.margin_seconds) < 0:
            raise ValueError("frame_seconds must be positive; pause, speech and margin lengths not negative")
        if not 0 <= self.noise_percentile < self.speech_percentile <= 100:
            raise ValueError("need 0 <= noise_percentile < speech_percentile <= 100")
        if not self.sentence_pause_seconds > 0:
            raise ValueError(f"sentence_pause_seconds must be above 0 (inf: never), got {self.sentence_pause_seconds}")
        if not self.quiet_speech_db > 0:
            raise ValueError(f"quiet_speech_db must be above 0 dB, got {self.quiet_speech_db}")


def frame_levels(blocks: Iterable[tuple[torch.Tensor, int]], frame_seconds: float = 0.01) -> np.ndarray:
    """Level in dBFS of each `frame_seconds` frame of a recording given as consecutive blocks.

    `blocks`: mono (N,) waveforms, all at the same sample rate (`audio.audio_blocks`);
    frames run across block boundaries. Frame k covers samples [round(k s), round((k + 1) s))
    with s = frame_seconds x rate, so frame k starts at k x frame_seconds seconds at any
    rate (at 22,050 Hz a frame is 220 or 221 samples). -> (F,) float64, the last partial
    frame included.
    """
    powers: list[np.ndarray] = []
    leftover = np.zeros(0, dtype=np.float64)
    consumed = 0  # samples before `leftover`
    frame = 0  # index of the first frame not yet measured
    for block, rate in blocks:
        step = frame_seconds * rate  # samples a frame, not always a whole number
        samples = np.concatenate([leftover, block.numpy().astype(np.float64)])
        last = int((consumed + len(samples)) // step)  # frames that end within what was read
        bounds = np.round(np.arange(frame, last + 1) * step).astype(np.int64) - consumed  # (frames + 1,)
        bounds = bounds[bounds <= len(samples)]
        if len(bounds) > 1:
            energy = np.concatenate([[0.0], np.cumsum(samples**2)])  # energy[i]: sum of the first i squares
            widths = np.maximum(np.diff(bounds), 1)
            powers.append((energy[bounds[1:]] - energy[bounds[:-1]]) / widths)
            frame += len(bounds) - 1
        start = bounds[-1] if len(bounds) else 0
        leftover = samples[start:]
        consumed += start
    if len(leftover):
        powers.append(np.array([np.mean(leftover**2)]))
    power = np.concatenate(powers) if powers else np.zeros(0)
    return 10 * np.log10(np.maximum(power, 1e-12))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame ranges, end exclusive, where `mask` (F,) is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _split_long(start: int, end: int, levels: np.ndarray, longest: int) -> list[tuple[int, int]]:
    """Cut frames [start, end) into pieces of at most `longest` frames at the quietest frame
    of the second half of each window."""
    pieces = []
    while end - start > longest:
        low = start + longest // 2
        window = levels[low : start + longest]
        cut = low + int(len(window) - 1 - np.argmin(window[::-1]))  # the latest of the quietest frames
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def find_segments(levels: np.ndarray, config: SegmenterConfig) -> list[tuple[float, float]]:
    """Pieces to decode, as (start, end) seconds, from the frame levels (F,) of `frame_levels`.

    Pieces are in time order, do not overlap and last at most `config.max_seconds`.
    A recording with no speech gives none.
    """
    if len(levels) == 0:
        return []
    frame = config.frame_seconds
    noise = float(np.percentile(levels, config.noise_percentile))
    if noise <= DIGITAL_SILENCE_DBFS:  # zeros pad it (synthetic or edited audio): no room noise to measure
        noise = config.floor_dbfs
    shortest = max(1, round(config.min_speech_seconds / frame))
    # the speech level from the frames that stand out from the noise, not from all: 4 s of speech in
    # 2 minutes of silence is under the 95th percentile of the whole recording
    standing_out = levels[levels > noise + config.min_contrast_db]
    loud = float(np.percentile(standing_out if len(standing_out) >= shortest else levels, config.speech_percentile))
    if loud <= config.floor_dbfs:
        return []  # digital silence or close to it
    contrast = loud - noise
    if contrast >= config.min_contrast_db:
        speech = levels > noise + min(contrast / 2, config.quiet_speech_db)
    else:
        speech = np.ones(len(levels), bool)
    pause = round(config.min_pause_seconds / frame)
    for start, end in _runs(~speech):  # a short silence inside speech is part of it
        if end - start < pause and start > 0 and end < len(levels):
            speech[start:end] = True
    regions = [(s, e) for s, e in _runs(speech) if e - s >= shortest]
    margin = round(config.margin_seconds / frame)
    longest = max(1, int(min(config.max_seconds, len(levels) * frame) / frame))  # inf: no cut for length
    padded = []
    for i, (start, end) in enumerate(regions):
        before = regions[i - 1][1] if i > 0 else 0  # margins stop halfway to the neighbours
        after = regions[i + 1][0] if i + 1 < len(regions) else len(levels)
        padded.append((max(start - margin, (before + start + 1) // 2), min(end + margin, (end + after) // 2)))
    pieces = [piece for start, end in padded for piece in _split_long(start, end, levels, longest)]
    return [(start * frame, min(end * frame, len(levels) * frame)) for start, end in pieces]


def short_spans(levels: np.ndarray, config: SegmenterConfig) -> list[tuple[float, float]]:
    """The pieces (seconds) of a recording no longer than `config.max_seconds`, from its frame
    levels (F,): all of it in one, unless it holds pauses of `sentence_pause_seconds`: then the
    sentences they separate, each a piece (as `find_segments` cuts a long recording)."""
    duration = len(levels) * config.frame_seconds
    pause = max(config.sentence_pause_seconds, config.min_pause_seconds)
    pieces = find_segments(levels, dataclasses.replace(config, min_pause_seconds=pause))
    return pieces if len(pieces) > 1 else [(0.0, duration)]
