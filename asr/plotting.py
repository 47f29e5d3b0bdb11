"""Pictures for debugging models: attention alignments over the spectrogram.

Uses matplotlib's non-interactive Agg backend, so it works without a screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib import font_manager, ft2font  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from asr.atomic import atomic_open  # noqa: E402

LABEL_FONTS = ("DejaVu Sans", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans")
"""Fonts for the characters of any script, in the order tried; those installed are used."""


@cache
def label_fonts() -> tuple[tuple[str, ...], frozenset[int]]:
    """The installed fonts of `LABEL_FONTS` and the code points they draw between them."""
    found = {entry.name: entry.fname for entry in font_manager.fontManager.ttflist}
    names = tuple(name for name in LABEL_FONTS if name in found)
    drawn: set[int] = set()
    for name in names:
        drawn.update(ft2font.FT2Font(found[name]).get_charmap())
    return names, frozenset(drawn)


def character_label(character: str) -> str:
    """How a character labels a row: "␣" for the space; its code point ("U+51B7") where no
    installed font draws it (a Chinese character without a CJK font: Debian's fonts-wqy-zenhei)."""
    if character == " ":
        return "\u2423"
    _, drawn = label_fonts()
    return character if all(ord(c) in drawn for c in character) else "/".join(f"U+{ord(c):04X}" for c in character)


def attention_figure(
    attention: np.ndarray,
    characters: Sequence[str],
    features: np.ndarray | None = None,
    frame_seconds: float = 0.01,
    title: str = "",
) -> Figure:
    """Attention weights (L, T_enc) as an image, one row per output character.

    `features` (T, D) log-mel frames, if given, are drawn above on the same time axis;
    `frame_seconds` is the duration of one feature frame. Encoder frames are spread
    over the feature frames' duration (the listener reduces the frame rate).
    """
    rows = 2 if features is not None else 1
    height = (2.0 if features is not None else 0.0) + max(2.0, 0.18 * len(characters))
    ratios = [1, max(1.0, 0.09 * len(characters))] if features is not None else [1]
    figure, axes = plt.subplots(rows, 1, figsize=(10, height), squeeze=False, gridspec_kw={"height_ratios": ratios})
    duration = (features.shape[0] if features is not None else attention.shape[1]) * frame_seconds
    if features is not None:
        axes[0, 0].imshow(
            features.T, origin="lower", aspect="auto", cmap="magma", extent=(0, duration, 0, features.shape[1])
        )
        axes[0, 0].set_ylabel("mel bin")
        axes[0, 0].set_xticks([])
    ax = axes[-1, 0]
    ax.imshow(attention, aspect="auto", cmap="Blues", interpolation="nearest", extent=(0, duration, len(characters), 0))
    ax.set_yticks(np.arange(len(characters)) + 0.5)
    ax.set_yticklabels([character_label(c) for c in characters], fontsize=7, fontfamily=list(label_fonts()[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("output character")
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> None:
    """Write `figure` as a PNG atomically and release its memory."""
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=dpi)
    plt.close(figure)
