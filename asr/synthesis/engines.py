"""Text-to-speech engines from Debian main: espeak-ng, flite and festival.

A `Voice` is one voice of one engine; a `Speaker` is a voice at a speaking rate and a
pitch shift. `synthesize()` speaks texts with a speaker and returns 16 kHz mono
waveforms; `add_noise()` mixes in white, pink or brown noise at a given SNR.

Rate is the engine's own control (espeak `-s`, flite `duration_stretch`, festival
`Duration_Stretch`, or hts_engine's `-r` for the HTS voice). Pitch is shifted by sox
for every engine, so one semitone means the same everywhere.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from asr.audio import SAMPLE_RATE, resample
from asr.augment import NOISE_COLORS, colored_noise, mix_at_snr
from asr.errors import UserError

log = logging.getLogger(__name__)

ENGINES: tuple[str, ...] = ("espeak", "flite", "festival")
PEAK = 0.9
"""Every synthesised waveform is scaled to this peak (about -0.9 dBFS) before noise is added."""
SILENT_PEAK = 1e-3
"""Output quieter than this peak (-60 dBFS) is left as it is, for the check pass to report."""
ESPEAK_WORDS_PER_MINUTE = 175
"""espeak-ng's default speaking rate; rate 1.0 uses it."""


class EngineMissingError(UserError):
    """An engine, voice or tool that is not installed; the message names the Debian package."""


class SynthesisError(RuntimeError):
    """An engine that ran but produced no usable audio."""


@dataclass(frozen=True)
class Voice:
    """One voice of one engine.

    `name` is the engine's own ("en-gb-x-rp+f3", "slt", "kal_diphone"); `talker` names
    the person or synthetic identity behind it: voices of different engines built from
    the same recordings share a talker and never go to different subsets.
    """

    engine: str
    name: str
    sex: str
    talker: str


ESPEAK_ACCENTS: tuple[str, ...] = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
ESPEAK_VARIANTS: tuple[tuple[str, str], ...] = (
    ("m1", "M"),
    ("m2", "M"),
    ("m3", "M"),
    ("m4", "M"),
    ("m5", "M"),
    ("m6", "M"),
    ("m7", "M"),
    ("m8", "M"),
    ("f1", "F"),
    ("f2", "F"),
    ("f3", "F"),
    ("f4", "F"),
    ("f5", "F"),
    ("klatt", "M"),
    ("klatt2", "M"),
    ("klatt3", "M"),
)
"""espeak-ng's human-sounding variants (the whispering, croaking and robot ones are left out), with sex."""

FESTIVAL_VOICES: dict[str, tuple[str, str, str]] = {
    "kal_diphone": ("M", "kal", "festvox-kallpc16k"),
    "ked_diphone": ("M", "ked", "festvox-kdlpc16k"),
    "cmu_us_slt_arctic_hts": ("F", "slt", "festvox-us-slt-hts"),
}
"""festival voice -> (sex, talker, Debian package)."""

FLITE_VOICES: dict[str, tuple[str, str]] = {
    "kal16": ("M", "kal"),
    "awb": ("M", "awb"),
    "rms": ("M", "rms"),
    "slt": ("F", "slt"),
}
"""flite voice -> (sex, talker); all are built into Debian's flite."""

VOICES: tuple[Voice, ...] = (
    *(
        Voice("espeak", f"{accent}+{variant}", sex, f"espeak:{accent}+{variant}")
        for accent in ESPEAK_ACCENTS
        for variant, sex in ESPEAK_VARIANTS
    ),
    *(Voice("flite", name, sex, talker) for name, (sex, talker) in FLITE_VOICES.items()),
    *(Voice("festival", name, sex, talker) for name, (sex, talker, _) in FESTIVAL_VOICES.items()),
)
"""Every voice, in a fixed order (speaker ids are derived from positions in it)."""

_PROGRAMS = {"espeak": ("espeak-ng", "espeak-ng"), "flite": ("flite", "flite"), "festival": ("festival", "festival")}
"""engine -> (program, Debian package)."""
FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"),)
FESTIVAL_LEXICON = Path("/usr/share/festival/dicts/cmu")


def missing_packages(engine: str) -> list[str]:
    """The Debian packages `engine` needs that are not installed (sox included: it shifts pitch)."""
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}'; choose from {', '.join(ENGINES)}")
    program, package = _PROGRAMS[engine]
    missing = [] if shutil.which(program) else [package]
    if engine == "festival":
        for voice, (_, _, voice_package) in FESTIVAL_VOICES.items():
            if not any((root / part / voice).is_dir() for root in FESTIVAL_VOICE_DIRS for part in ("english", "us")):
                missing.append(voice_package)
        if not FESTIVAL_LEXICON.is_dir():
            missing.append("festlex-cmu")
    if not shutil.which("sox"):
        missing.append("sox")
    return missing


def check_engines(engines: Sequence[str]) -> None:
    """Raise `EngineMissingError` naming the Debian packages to install, if any engine lacks one."""
    for engine in engines:
        missing = missing_packages(engine)
        if missing:
            raise EngineMissingError(
                f"engine '{engine}' is not usable: install the Debian package(s) {' '.join(missing)} "
                f"(apt-get install {' '.join(missing)})"
            )


def available_engines() -> list[str]:
    """The engines whose packages are all installed; a warning names the others' missing packages."""
    usable = []
    for engine in ENGINES:
        missing = missing_packages(engine)
        if missing:
            log.warning("skipping engine %s: the Debian package(s) %s are not installed", engine, " ".join(missing))
        else:
            usable.append(engine)
    return usable


@dataclass(frozen=True)
class Speaker:
    """A voice at a speaking rate (1.0: the engine's default speed) and a pitch shift in semitones."""

    id: int
    voice: Voice
    rate: float
    pitch: float

    @property
    def description(self) -> str:
        """e.g. "espeak en-gb-x-rp+f3 rate 1.15 pitch -2"; no "|" (it is SPEAKERS.TXT's separator)."""
        return f"{self.voice.engine} {self.voice.name} rate {self.rate:g} pitch {self.pitch:+g}"


def _run(command: list[str], stdin: str | bytes, cwd: Path | None = None) -> bytes:
    """Run `command` with `stdin` (text is UTF-8 encoded); its stdout, or `SynthesisError` on failure."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    try:
        result = subprocess.run(command, input=data, capture_output=True, cwd=cwd, check=False, timeout=600)
    except subprocess.TimeoutExpired:
        raise SynthesisError(f"{command[0]} ran for more than 10 minutes") from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise SynthesisError(f"{' '.join(command[:3])} failed (exit {result.returncode}): {' '.join(message)}")
    return result.stdout


def _read_wav(data: bytes | Path) -> tuple[np.ndarray, int]:
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise SynthesisError(f"the engine's output is not readable audio ({error})") from None
    return samples.mean(axis=1), rate


def _espeak(speaker: Speaker, text: str) -> tuple[np.ndarray, int]:
    wpm = round(ESPEAK_WORDS_PER_MINUTE * speaker.rate)
    return _read_wav(_run(["espeak-ng", "-v", speaker.voice.name, "-s", str(wpm), "--stdout"], text))


def _flite(speaker: Speaker, text: str, wav: Path) -> tuple[np.ndarray, int]:
    stretch = f"duration_stretch={1 / speaker.rate:.4f}"
    _run(["flite", "-voice", speaker.voice.name, "--setf", stretch, "-o", str(wav)], text)  # flite cannot seek stdout
    return _read_wav(wav)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival(speaker: Speaker, texts: Sequence[str], workdir: Path) -> list[tuple[np.ndarray, int]]:
    """All `texts` in one festival process: loading a voice costs more than speaking a sentence."""
    lines = [f"(voice_{speaker.voice.name})", f"(Parameter.set 'Duration_Stretch {1 / speaker.rate:.4f})"]
    if speaker.voice.name.endswith("_hts"):  # hts_engine ignores Duration_Stretch; its -r is a speed factor
        lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {speaker.rate:.4f}))))')
    wavs = [workdir / f"{number:04d}.wav" for number in range(len(texts))]
    for text, wav in zip(texts, wavs, strict=True):
        lines.append(
            f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) {_scheme_string(str(wav))} 'riff)"
        )
    _run(["festival", "--pipe"], "\n".join(lines) + "\n", cwd=workdir)
    missing = [wav.name for wav in wavs if not wav.is_file()]
    if missing:
        raise SynthesisError(
            f"festival voice {speaker.voice.name} wrote no audio for {len(missing)} of {len(texts)} texts"
        )
    return [_read_wav(wav) for wav in wavs]


def _shift_pitch(samples: np.ndarray, rate: int, semitones: float) -> np.ndarray:
    """sox's `pitch` effect (WSOLA): the same duration, `semitones` higher or lower."""
    if semitones == 0:
        return samples
    raw = ["-t", "f32", "-r", str(rate), "-c", "1"]
    output = _run(["sox", *raw, "-", *raw, "-", "pitch", f"{100 * semitones:g}"], samples.astype(np.float32).tobytes())
    return np.frombuffer(output, dtype=np.float32)


def _finish(samples: np.ndarray, rate: int, speaker: Speaker) -> np.ndarray:
    """Pitch shift, resample to SAMPLE_RATE, scale to PEAK: (N,) at `rate` -> (M,) at 16 kHz."""
    shifted = _shift_pitch(samples, rate, speaker.pitch)
    waveform = resample(torch.from_numpy(np.array(shifted, dtype=np.float32)), rate, SAMPLE_RATE).numpy()
    peak = float(np.abs(waveform).max(initial=0.0))
    if peak > SILENT_PEAK:
        waveform = waveform * (PEAK / peak)
    return waveform.astype(np.float32)


def synthesize(speaker: Speaker, texts: Sequence[str], workdir: Path) -> list[np.ndarray]:
    """Speak each of `texts` with `speaker`: one (N_i,) float32 waveform at 16 kHz each, peak `PEAK`.

    `workdir` is an empty folder for the engines' temporary files. Raises
    `SynthesisError` when an engine fails or writes nothing.
    """
    engine = speaker.voice.engine
    if engine == "festival":
        raw = _festival(speaker, texts, workdir)
    elif engine == "flite":
        raw = [_flite(speaker, text, workdir / f"{number:04d}.wav") for number, text in enumerate(texts)]
    else:
        raw = [_espeak(speaker, text) for text in texts]
    return [_finish(samples, rate, speaker) for samples, rate in raw]


def add_noise(waveform: np.ndarray, color: str, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Mix `color` noise into `waveform` (N,) at `snr_db` dB signal-to-noise (powers over the whole file).

    The noise and the mixing are those of training augmentation (`asr.augment`); the sum is
    scaled down if it would clip.
    """
    if color not in NOISE_COLORS:
        raise ValueError(f"noise color must be one of {NOISE_COLORS}, got {color!r}")
    mixed = mix_at_snr(waveform.astype(np.float64), colored_noise(len(waveform), color, rng), snr_db)
    peak = float(np.abs(mixed).max())
    if peak > PEAK:
        mixed = mixed * (PEAK / peak)
    return mixed.astype(np.float32)
