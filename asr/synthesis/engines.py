"""Text-to-speech engines from Debian main: espeak-ng, flite and festival.

`synthesize()` speaks texts with a speaker (`asr.synthesis.voices`) and returns 16 kHz mono
waveforms; `add_noise()` mixes in white, pink or brown noise at a given SNR.

Rate is the engine's own control (espeak `-s`, flite `duration_stretch`, festival
`Duration_Stretch`, or hts_engine's `-r` for the HTS voice). Pitch is shifted by sox
for every engine, so one semitone means the same everywhere.
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile
import torch

from asr.frontend.audio import SAMPLE_RATE, resample
from asr.frontend.augment import NOISE_COLORS, colored_noise, mix_at_snr
from asr.synthesis.voices import Speaker

log = logging.getLogger(__name__)


PEAK = 0.9
"""Every synthesised waveform is scaled to this peak (about -0.9 dBFS) before noise is added."""
SILENT_PEAK = 1e-3
"""Output quieter than this peak (-60 dBFS) is left as it is, for the check pass to report."""
ESPEAK_WORDS_PER_MINUTE = 175
"""espeak-ng's default speaking rate; rate 1.0 uses it."""


class SynthesisError(RuntimeError):
    """An engine that ran but produced no usable audio."""


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

    The noise and the mixing are those of training augmentation (`asr.frontend.augment`); the sum is
    scaled down if it would clip.
    """
    if color not in NOISE_COLORS:
        raise ValueError(f"noise color must be one of {NOISE_COLORS}, got {color!r}")
    mixed = mix_at_snr(waveform.astype(np.float64), colored_noise(len(waveform), color, rng), snr_db)
    peak = float(np.abs(mixed).max())
    if peak > PEAK:
        mixed = mixed * (PEAK / peak)
    return mixed.astype(np.float32)
