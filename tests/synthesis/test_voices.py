"""The engines' voices (`asr.synthesis.voices`): a missing engine names its Debian package."""

from __future__ import annotations

import pytest

from asr.synthesis import voices
from asr.synthesis.voices import EngineMissingError, check_engines


def test_a_missing_engine_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voices.shutil, "which", lambda program: None)
    with pytest.raises(EngineMissingError, match="espeak-ng"):
        check_engines(["espeak"])
