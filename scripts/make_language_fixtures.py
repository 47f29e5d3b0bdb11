"""Write the Common Voice and AISHELL-1 test fixtures, each in its corpus's own layout.

    tests/fixtures/commonvoice/cv-corpus-test/de/{train,dev,test,validated}.tsv, clips/*.mp3
    tests/fixtures/aishell/data_aishell/transcript/aishell_transcript_v0.8.txt, wav/<split>/S####/*.wav

The audio is cut from the LibriSpeech fixture's recordings (16 kHz mono; what is spoken does not
match the text): 1.5 s pieces written as variable-bitrate MP3 for Common Voice, 0.7 s pieces as
16-bit WAV for AISHELL. The texts are German (umlauts, ß, a sentence that starts with a quote
mark: Common Voice's tables are not quoted) and word-segmented Mandarin. AISHELL's quirks are
kept: one recording has no transcript line (S0003W0123), one line has no recording (S0002W0125).
The output is committed; run this only to change it:

    .venv/bin/python scripts/make_language_fixtures.py
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import soundfile

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
RECORDINGS = sorted((FIXTURES / "LibriSpeech").rglob("*.flac"))

COMMONVOICE_HEADER = (
    "client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents variant locale segment"
)
# split -> (speaker, clip number, sentence); validated.tsv lists all of them and one clip more
COMMONVOICE = {
    "train": [
        ("anna", 17298952, "Die Straße ist nass."),
        ("anna", 17298953, '"Guten Morgen", sagte der Bäcker.'),
        ("bernd", 18102214, "Grüße aus München!"),
        ("bernd", 18102215, "Über den Fluss führt eine Brücke."),
    ],
    "dev": [("clara", 19020031, "Die Bäume sind grün."), ("clara", 19020032, "Der Junge heißt Jörg.")],
    "test": [("dieter", 20117740, "Öffne bitte die Tür."), ("dieter", 20117741, "Wir essen süße Äpfel.")],
}
VALIDATED_ONLY = ("emil", 21000005, "Ich weiß es nicht.")

# split -> speaker -> (utterance, words); None: a recording without a transcript line
AISHELL: dict[str, dict[str, list[tuple[str, str | None]]]] = {
    "train": {
        "S0002": [("W0122", "而 对 楼市 成交 抑制 作用 最 大 的 限 购"), ("W0123", "也 成为 地方 政府 的 眼中 钉")],
        "S0003": [("W0121", "北京 的 房价 上涨 了"), ("W0122", "我们 的 城市 成交 量 大"), ("W0123", None)],
    },
    "dev": {"S0724": [("W0121", "楼市 的 成交 量 上涨"), ("W0122", "政府 对 房价 的 作用")]},
    "test": {"S0764": [("W0121", "北京 楼市 成交 大"), ("W0122", "地方 政府 的 限 购")]},
}
UNRECORDED = ("BAC009S0002W0125", "这 是 一 个 没有 录音 的 句子")


def piece(number: int, seconds: float) -> tuple[np.ndarray, int]:
    """`seconds` of the fixture's recording `number` (mod 6), from an offset that varies with `number`."""
    waveform, rate = soundfile.read(RECORDINGS[number % len(RECORDINGS)], dtype="float32")
    start = int(0.1 * (number // len(RECORDINGS)) * rate)
    return waveform[start : start + int(seconds * rate)], rate


def commonvoice_row(speaker: str, clip: int, sentence: str) -> str:
    client_id = hashlib.sha512(speaker.encode()).hexdigest()  # as long as Common Voice's
    sentence_id = hashlib.sha256(sentence.encode()).hexdigest()
    gender = "female_feminine" if speaker in ("anna", "clara") else "male_masculine"
    fields = [client_id, f"common_voice_de_{clip}.mp3", sentence_id, sentence, "", "2", "0", "thirties", gender]
    return "\t".join([*fields, "Deutschland Deutsch", "", "de", ""])


def make_commonvoice() -> Path:
    folder = FIXTURES / "commonvoice" / "cv-corpus-test" / "de"
    shutil.rmtree(folder.parent, ignore_errors=True)
    (folder / "clips").mkdir(parents=True)
    rows = [*(row for split in COMMONVOICE.values() for row in split), VALIDATED_ONLY]
    for number, (_, clip, _) in enumerate(rows):
        waveform, rate = piece(number, 1.5)
        path = folder / "clips" / f"common_voice_de_{clip}.mp3"
        soundfile.write(path, waveform, rate, format="MP3", compression_level=0.9, bitrate_mode="VARIABLE")
    header = COMMONVOICE_HEADER.replace(" ", "\t")
    for split, split_rows in [*COMMONVOICE.items(), ("validated", rows)]:
        lines = [header, *(commonvoice_row(*row) for row in split_rows)]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def make_aishell() -> Path:
    folder = FIXTURES / "aishell" / "data_aishell"
    shutil.rmtree(folder, ignore_errors=True)
    lines = [" ".join(UNRECORDED)]
    number = 0
    for split, speakers in AISHELL.items():
        for speaker, utterances in speakers.items():
            (folder / "wav" / split / speaker).mkdir(parents=True)
            for utterance, words in utterances:
                utterance_id = f"BAC009{speaker}{utterance}"
                waveform, rate = piece(number, 0.7)
                number += 1
                soundfile.write(folder / "wav" / split / speaker / f"{utterance_id}.wav", waveform, rate, "PCM_16")
                if words is not None:
                    lines.append(f"{utterance_id} {words}")
    (folder / "transcript").mkdir()
    (folder / "transcript" / "aishell_transcript_v0.8.txt").write_text(
        "\n".join(sorted(lines)) + "\n", encoding="utf-8"
    )
    return folder


def main() -> None:
    for folder in (make_commonvoice(), make_aishell()):
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
