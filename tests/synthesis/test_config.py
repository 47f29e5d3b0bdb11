"""The corpus settings (`asr.synthesis.config`): numbers that are not finite are refused."""

from __future__ import annotations

import math

import pytest

from asr.synthesis.config import CorpusConfig, CorpusError


@pytest.mark.parametrize("numbers", [{"snr_db": (math.nan, 5.0)}, {"rates": (1.0, math.inf)}, {"pitches": (math.nan,)}])
def test_numbers_that_are_not_finite_are_refused(numbers: dict) -> None:
    with pytest.raises(CorpusError, match=f"{next(iter(numbers))} must be finite numbers"):
        CorpusConfig(**numbers)
