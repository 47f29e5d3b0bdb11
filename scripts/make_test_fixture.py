"""Synthesise the tiny LibriSpeech-layout fixture under tests/fixtures/LibriSpeech.

Six short utterances spoken by espeak-ng (three voices), written as 16 kHz mono
16-bit flac with LibriSpeech's transcript files. The output is committed; run this
only to change it:

    apt-get install espeak-ng && .venv/bin/python scripts/make_test_fixture.py
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import soundfile

from asr.frontend.audio import SAMPLE_RATE, load_audio

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "LibriSpeech"

# subset -> speaker -> (chapter, espeak-ng voice, sentences)
CORPUS = {
    "dev-clean": {
        "1001": ("2001", "en-us+m3", ["THE CAT SAT ON THE MAT", "IT WAS A BRIGHT COLD DAY"]),
        "1002": ("2002", "en-gb+f2", ["SHE SELLS SEA SHELLS", "WE'LL GO HOME AT NOON"]),
    },
    "test-clean": {
        "1003": ("2003", "en-us+m1", ["OPEN THE DOOR PLEASE", "THE RIVER RAN SLOWLY"]),
    },
}


def speak(text: str, voice: str, out: Path) -> None:
    """Speak `text` with espeak-ng into a 16 kHz mono flac at `out`."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", wav.name, text], check=True)
        waveform, rate = load_audio(wav.name)
    soundfile.write(out, waveform.numpy(), rate, subtype="PCM_16")
    assert rate == SAMPLE_RATE


def main() -> None:
    for subset, speakers in CORPUS.items():
        for speaker, (chapter, voice, sentences) in speakers.items():
            folder = ROOT / subset / speaker / chapter
            folder.mkdir(parents=True, exist_ok=True)
            lines = []
            for number, sentence in enumerate(sentences):
                utterance_id = f"{speaker}-{chapter}-{number:04d}"
                speak(sentence, voice, folder / f"{utterance_id}.flac")
                lines.append(f"{utterance_id} {sentence}")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {ROOT}")


if __name__ == "__main__":
    main()
