"""The voices of the text-to-speech engines from Debian main (espeak-ng, flite, festival), the
talkers behind them, and which engines this machine has installed.

A `Voice` is one voice of one engine; a `Speaker` is a voice at a speaking rate and a pitch
shift. Nothing here runs an engine (`asr.synthesis.engines` does), so the command line can
list engines without loading the audio stack.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.errors import UserError
from asr.synthesis.languages import LANGUAGES

log = logging.getLogger(__name__)

ENGINES: tuple[str, ...] = ("espeak", "flite", "festival")


class EngineMissingError(UserError):
    """An engine, voice or tool that is not installed; the message names the Debian package."""


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
    language: str = "en"
    """What it speaks: "en", or a code of `asr.synthesis.languages.LANGUAGES` (espeak-ng's voices only)."""


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
    *(
        Voice("espeak", f"{accent}+{variant}", sex, f"espeak:{accent}+{variant}", code)
        for code, language in LANGUAGES.items()
        for accent in language.espeak_voices
        for variant, sex in ESPEAK_VARIANTS
    ),
)
"""Every voice, in a fixed order (speaker ids are derived from positions in it; the voices of other
languages than English come last, so that English speakers keep the ids they had)."""

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
