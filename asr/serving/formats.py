"""A transcript in the response formats of OpenAI's transcription API: json (`{"text": ...}`), text,
srt and vtt (`asr.writers`' own), and verbose_json, Whisper's record of segments and words.

Times are seconds from the start of the recording, rounded to the millisecond. Fields of
verbose_json that this toolkit has no figure for are given their neutral value: `seek` is the
segment's start in 10 ms frames (as Whisper counts it), `tokens` is empty (the model's tokens are
characters, not Whisper's), `temperature` is 0 (the search is deterministic), and `no_speech_prob`
is 0 (pieces judged silent are cut out before decoding and make no segment).
"""

from __future__ import annotations

import zlib
from typing import Any

from asr.text import Vocabulary
from asr.transcribe import Transcript
from asr.writers import seconds, to_srt, to_txt, to_vtt

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
"""The `response_format` values of OpenAI's transcription API, all of which are answered."""

GRANULARITIES = ("segment", "word")
"""The `timestamp_granularities[]` values: segments (the default) and words, in verbose_json."""

MEDIA_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}
"""The Content-Type of each response format."""


def model_language(vocab: Vocabulary) -> str:
    """What verbose_json's `language` says: the language the model was trained for, as far as its
    directory records it: "english" for the english normaliser, "unknown" otherwise (the unicode
    and none normalisers serve any language). The request's `language` does not change it."""
    return "english" if vocab.text.normalizer == "english" else "unknown"


def compression_ratio(text: str) -> float:
    """Whisper's repetition check: the UTF-8 bytes of `text` over their zlib-compressed size."""
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def verbose_json(transcript: Transcript, language: str, granularities: tuple[str, ...] = ()) -> dict[str, Any]:
    """Whisper's verbose record: task, language, duration (seconds), text, and the segments
    (granularity "segment", the default when none is given) and/or the words ("word")."""
    record: dict[str, Any] = {
        "task": "transcribe",
        "language": language,
        "duration": seconds(transcript.duration),
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        record["segments"] = [
            {
                "id": number,
                "seek": round(segment.start * 100),
                "start": seconds(segment.start),
                "end": seconds(segment.end),
                "text": segment.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": round(segment.avg_log_prob, 4),
                "compression_ratio": compression_ratio(segment.text),
                "no_speech_prob": 0.0,
            }
            for number, segment in enumerate(transcript.segments)
        ]
    if "word" in granularities:
        record["words"] = [
            {"word": word.text, "start": seconds(word.start), "end": seconds(word.end)}
            for segment in transcript.segments
            for word in segment.words
        ]
    return record


def render(
    transcript: Transcript, response_format: str, language: str, granularities: tuple[str, ...] = ()
) -> str | dict[str, Any]:
    """The response body in `response_format` (one of `RESPONSE_FORMATS`): a dict for the JSON
    formats, text for the others; `granularities` apply to verbose_json."""
    if response_format == "json":
        return {"text": transcript.text}
    if response_format == "verbose_json":
        return verbose_json(transcript, language, granularities)
    writers = {"text": to_txt, "srt": to_srt, "vtt": to_vtt}
    if response_format not in writers:
        raise ValueError(f"unknown response format {response_format!r}")
    return writers[response_format](transcript)
