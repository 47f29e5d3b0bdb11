"""Transcripts as text: plain text, JSON, SubRip (srt), WebVTT (vtt) and tab-separated values (tsv).

Times are seconds from the start of the recording. In tsv they are seconds with three
decimals (`start`, `end`, `text` columns); srt and vtt use their own HH:MM:SS,mmm and
HH:MM:SS.mmm forms.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from asr.transcribe import Transcript


def timestamp(value: float, decimal: str) -> str:
    """Seconds -> HH:MM:SS{decimal}mmm, rounded to the millisecond."""
    milliseconds = round(max(value, 0.0) * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{decimal}{milliseconds:03d}"


def seconds(value: float) -> float:
    """Seconds rounded to the millisecond, as every format shows them."""
    return round(value * 1000) / 1000


def to_txt(transcript: Transcript) -> str:
    return transcript.text + "\n"


def to_dict(transcript: Transcript) -> dict:
    """The transcript as plain values: source, duration, text and segments (with words if any)."""
    return {
        # a file name that is not UTF-8 holds surrogates (os.fsdecode); JSON text gets U+FFFD for its odd bytes
        "source": transcript.source.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
        "duration": seconds(transcript.duration),
        "text": transcript.text,
        "segments": [
            {
                "start": seconds(segment.start),
                "end": seconds(segment.end),
                "text": segment.text,
                "avg_log_prob": round(segment.avg_log_prob, 4),
                **(
                    {
                        "words": [
                            {"text": w.text, "start": seconds(w.start), "end": seconds(w.end)} for w in segment.words
                        ]
                    }
                    if segment.words
                    else {}
                ),
            }
            for segment in transcript.segments
        ],
    }


def to_json(transcript: Transcript) -> str:
    """One JSON object on one line (several transcripts make JSON Lines)."""
    return json.dumps(to_dict(transcript), ensure_ascii=False) + "\n"


def to_srt(transcript: Transcript) -> str:
    cues = [
        f"{number}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n{s.text}\n"
        for number, s in enumerate(transcript.segments, 1)
    ]
    return "\n".join(cues)


def to_vtt(transcript: Transcript) -> str:
    cues = [f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.text}\n" for s in transcript.segments]
    return "\n".join(["WEBVTT\n", *cues])


def to_tsv(transcript: Transcript) -> str:
    rows = [f"{seconds(s.start):.3f}\t{seconds(s.end):.3f}\t{s.text}\n" for s in transcript.segments]
    return "".join(["start\tend\ttext\n", *rows])


WRITERS: dict[str, Callable[[Transcript], str]] = {
    "txt": to_txt,
    "json": to_json,
    "srt": to_srt,
    "vtt": to_vtt,
    "tsv": to_tsv,
}
"""Format name -> the function that renders a transcript in it."""
