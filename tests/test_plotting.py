from pathlib import Path

import numpy as np
from PIL import Image

from asr import plotting
from asr.plotting import attention_figure, save_figure


def test_attention_plot_is_a_png_of_the_requested_size(tmp_path: Path) -> None:
    attention = np.eye(12, 40)[:, ::1]  # (L, T_enc)
    features = np.random.default_rng(0).normal(size=(160, 80))  # (T, D), 4x the encoder frames
    figure = attention_figure(attention, list("HELLO WORLD!"), features, title="test")
    save_figure(figure, tmp_path / "attention.png", dpi=50)
    with Image.open(tmp_path / "attention.png") as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width == 10 * 50 and height > 100


def test_attention_plot_without_features(tmp_path: Path) -> None:
    save_figure(attention_figure(np.full((3, 5), 0.2), ["A", " ", "B"]), tmp_path / "a.png", dpi=40)
    with Image.open(tmp_path / "a.png") as image:
        assert image.size[0] == 400


def test_a_character_no_installed_font_draws_is_labelled_by_its_code_point(monkeypatch) -> None:
    """Mandarin hypotheses on a machine without a CJK font: a readable label, no missing-glyph warning."""
    monkeypatch.setattr(plotting, "label_fonts", lambda: (("DejaVu Sans",), frozenset(map(ord, "aß"))))
    assert [plotting.character_label(c) for c in "aß冷 "] == ["a", "ß", "U+51B7", "\u2423"]
