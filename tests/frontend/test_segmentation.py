import math

import numpy as np
import pytest
import torch
from pytest import approx

from asr.frontend.audio import SAMPLE_RATE
from asr.frontend.segmentation import SegmenterConfig, find_segments, frame_levels, short_spans


def test_segments_never_exceed_the_limit_and_cut_at_the_quietest_frame() -> None:
    config = SegmenterConfig(max_seconds=2.0)
    levels = np.full(1000, -20.0)  # 10 s of speech with no pause
    levels[[150, 320, 480, 650]] = -35.0  # momentary dips
    pieces = find_segments(levels, config)
    assert all(end - start <= 2.0 + 1e-9 for start, end in pieces)
    assert pieces[0] == (0.0, pytest.approx(1.5)) and pieces[-1][1] == pytest.approx(10.0)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))  # nothing is lost between pieces
    assert find_segments(np.full(500, -90.0), config) == []  # digital silence
    assert find_segments(np.zeros(0), config) == []


def test_frame_levels_do_not_depend_on_the_block_size(speech: torch.Tensor) -> None:
    whole = frame_levels([(speech, SAMPLE_RATE)])
    blocks = [(block, SAMPLE_RATE) for block in torch.split(speech, 1234)]
    np.testing.assert_allclose(frame_levels(blocks), whole, atol=1e-6)
    assert len(whole) == math.ceil(speech.shape[0] / 160)


def test_pauses_separate_pieces_and_margins_keep_the_speech_edges() -> None:
    config = SegmenterConfig(max_seconds=3.0, min_pause_seconds=0.5, margin_seconds=0.3)
    levels = np.full(1000, -70.0)  # 10 s: four stretches of speech in quiet noise
    for start, end in ((100, 180), (210, 300), (360, 420), (600, 750)):
        levels[start:end] = -20.0
    levels[700] = -70.0  # a 10 ms dip inside a word is not a pause
    pieces = find_segments(levels, config)
    # 0.3 s between the first two is no pause; 0.6 s and 1.8 s are: three pieces
    expected = [(0.7, 3.3), (3.3, 4.5), (5.7, 7.8)]  # margins stop halfway to the neighbour
    assert pieces == [(pytest.approx(a), pytest.approx(b)) for a, b in expected]


def test_quiet_speech_next_to_loud_speech_gets_a_piece(speech: torch.Tensor) -> None:
    """A talker 26 dB below another, with pauses of quiet noise between them: the halfway threshold
    between noise and loud speech left the quiet one out without a word."""
    rng = np.random.default_rng(0)
    pauses = [torch.from_numpy(rng.normal(0, 3e-4, SAMPLE_RATE).astype(np.float32)) for _ in range(4)]  # -70 dBFS
    quiet = speech * 10 ** (-26 / 20)
    parts = [pauses[0], speech, pauses[1], quiet, pauses[2], speech, pauses[3]]
    starts = np.cumsum([0] + [len(part) for part in parts]) / SAMPLE_RATE
    pieces = find_segments(frame_levels([(torch.cat(parts), SAMPLE_RATE)]), SegmenterConfig())
    spoken = np.flatnonzero(np.abs(speech.numpy()) > 0.05)  # the loud samples of the words, in seconds
    for index in (1, 3, 5):  # each talker's words lie in a piece
        first, last = starts[index] + spoken[0] / SAMPLE_RATE, starts[index] + spoken[-1] / SAMPLE_RATE
        assert any(start <= first and last <= end for start, end in pieces), (index, pieces)
    assert len(pieces) == 3 and not any(start < starts[1] - 0.5 for start, _ in pieces)  # the pauses stay out


def test_a_far_talker_in_a_quiet_room_is_speech_and_zeros_are_not_a_noise_level() -> None:
    """A room at -70 dBFS with a far talker at -50 dBFS and a near one at -20 dBFS: a noise level
    floored at -60 dBFS put the far talker under the threshold. Zeros padding a recording are no
    room's noise: taken for it, they would make the -60 dBFS hiss between two talkers speech."""
    rng = np.random.default_rng(0)

    def room(dbfs: float) -> np.ndarray:
        return dbfs + rng.normal(0, 0.5, 100)  # one second of 10 ms frames

    config = SegmenterConfig(margin_seconds=0.0)
    far_and_near = np.concatenate([room(-70), np.full(100, -50.0), room(-70), np.full(100, -20.0), room(-70)])
    assert find_segments(far_and_near, config) == [(approx(1.0), approx(2.0)), (approx(3.0), approx(4.0))]
    padded = np.concatenate([np.full(100, -120.0), room(-60), np.full(100, -20.0), room(-60), np.full(100, -25.0)])
    assert find_segments(padded, config) == [(approx(2.0), approx(3.0)), (approx(4.0), approx(5.0))]


def test_steady_noise_without_pauses_is_still_cut_to_the_limit() -> None:
    rng = np.random.default_rng(0)
    levels = -30 + rng.normal(0, 1, 3000)  # 30 s of loud noise: no contrast between noise and speech
    pieces = find_segments(levels, SegmenterConfig(max_seconds=10.0))
    assert pieces[0][0] == 0 and pieces[-1][1] == pytest.approx(30.0)
    assert all(end - start <= 10.0 for start, end in pieces) and len(pieces) >= 3


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_seconds"):
        SegmenterConfig(max_seconds=0.5)
    with pytest.raises(ValueError, match="percentile"):
        SegmenterConfig(noise_percentile=50, speech_percentile=40)


def bursts_at(rate: int, seconds: float = 600.0) -> np.ndarray:
    """Noise bursts ("speech", -20 dBFS) of 2-7 s separated by 1 s pauses of quiet noise, at `rate` Hz;
    the bursts start and end at the same times in seconds whatever the rate."""
    rng = np.random.default_rng(rate)
    samples = rng.normal(0, 0.001, int(seconds * rate)).astype(np.float32)
    start = 1.0
    while start + 7 < seconds:
        length = 2 + (start * 7.3) % 5  # deterministic lengths in [2, 7) s
        a, b = round(start * rate), round((start + length) * rate)
        samples[a:b] = rng.normal(0, 0.1, b - a)
        start += length + 1.0
    return samples


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_cut_points_are_the_same_in_seconds_at_any_sample_rate(rate: int) -> None:
    """At 22,050 Hz a 10 ms frame is 220.5 samples; counting 220 would end pieces 1.35 s late after 10 minutes."""
    config = SegmenterConfig(max_seconds=20.0)

    def pieces(at: int) -> list[tuple[float, float]]:
        samples = torch.from_numpy(bursts_at(at))
        blocks = [(block, at) for block in torch.split(samples, 30 * at)]  # as audio_blocks reads a file
        return find_segments(frame_levels(blocks), config)

    reference, got = pieces(SAMPLE_RATE), pieces(rate)
    assert len(got) == len(reference) > 80
    frame = config.frame_seconds
    apart = max(abs(a - b) for pair in zip(got, reference, strict=True) for a, b in zip(*pair, strict=True))
    assert apart <= frame + 1e-9  # at most a frame, give or take the rounding of seconds


@pytest.mark.parametrize("background", ["zeros", "-70 dBFS noise"])
def test_a_few_seconds_of_speech_in_two_minutes_of_silence_are_found(speech: torch.Tensor, background: str) -> None:
    """Speech under 5 % of a recording lies under the 95th percentile of its frame levels: taken as
    the speech level, it made the whole file silent and the transcript empty."""
    rng = np.random.default_rng(0)
    words = torch.cat([speech] * math.ceil(4 * SAMPLE_RATE / len(speech)))[: 4 * SAMPLE_RATE]  # 4 s
    length = 120 * SAMPLE_RATE
    if background == "zeros":
        audio = torch.zeros(length)
    else:
        audio = torch.from_numpy(rng.normal(0, 3e-4, length).astype(np.float32))
    at = 60 * SAMPLE_RATE
    audio[at : at + len(words)] += words
    pieces = find_segments(frame_levels([(audio, SAMPLE_RATE)]), SegmenterConfig())
    covered = sum(min(end, 64.0) - max(start, 60.0) for start, end in pieces if end > 60.0 and start < 64.0)
    assert covered > 3.0, pieces  # the words' pauses may be left out, not the words
    assert all(start > 58.0 and end < 66.0 for start, end in pieces), pieces  # and the silence stays out


def test_a_short_recording_is_cut_only_at_pauses_that_end_a_sentence() -> None:
    """Shorter than max_seconds: whole, unless a pause of sentence_pause_seconds parts two sentences
    (a model trained on single sentences stopped spelling at the first one's end)."""
    config = SegmenterConfig(max_seconds=20.0, margin_seconds=0.1)
    for pause, expected in ((30, [(0.0, 2.9)]), (100, [(0.4, 1.6), (2.4, 3.2)])):
        levels = np.full(260 + pause, -70.0)
        levels[50:150] = levels[150 + pause : 210 + pause] = -20.0  # 1.0 s and 0.6 s of speech
        pieces = short_spans(levels, config)
        assert pieces == [(approx(a), approx(b)) for a, b in expected], (pause, pieces)
