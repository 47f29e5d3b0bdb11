"""English number spelling: amounts, years and other numbers written as words, where a corpus
asks for it (`asr prepare --expand-numbers`) and for the synthetic corpus's sentences."""

from __future__ import annotations

import re

# A number stands alone: not glued to letters, digits, times (3:30), paths, ranges or signs.
_ALONE_BEFORE = r"(?<![\w:/.,\-+])"
_ALONE_AFTER = r"(?![\w:/\-+]|[.,]\d)"
_CURRENCY = re.compile(_ALONE_BEFORE + r"([$\u00a3\u20ac])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d\d))?" + _ALONE_AFTER)
_CURRENCY_NAMES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "\u00a3": ("pound", "pounds", "penny", "pence"),
    "\u20ac": ("euro", "euros", "cent", "cents"),
}
_PERCENT = re.compile(_ALONE_BEFORE + r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(_ALONE_BEFORE + r"(\d+)(st|nd|rd|th)\b")
_DECADE = re.compile(_ALONE_BEFORE + r"((?:1[1-9]|20)\d0)'?s\b")
_YEAR_CUE = r"(?:in|of|since|until|till|by|from|to|during|before|after|circa|around|year|summer|winter|spring|autumn)"
_YEAR_AFTER_CUE = re.compile(rf"\b({_YEAR_CUE}\s)((?:1[1-9]|20)\d\d)" + _ALONE_AFTER, re.IGNORECASE)
_YEAR_BEFORE_ERA = re.compile(_ALONE_BEFORE + r"(\d{1,4})(?=\s?(?:BC|AD|B\.C\.|A\.D\.)(?!\w))")
_DECIMAL = re.compile(_ALONE_BEFORE + r"(\d+\.\d+)" + _ALONE_AFTER)
_CARDINAL = re.compile(_ALONE_BEFORE + r"(\d{1,3}(?:,\d{3})+|\d+)" + _ALONE_AFTER)
_ERAS = re.compile(r"\b(?:B\.C\.|A\.D\.|BC|AD)(?!\w)")


def _words(number: str, to: str = "cardinal") -> str:
    """num2words without its commas ("one thousand, two hundred" reads as two phrases)."""
    from num2words import num2words  # here: only spelling numbers needs num2words, not the CLI or inference

    return num2words(number if to == "cardinal" and "." in number else int(number), to=to).replace(",", "")


def _money(match: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCY_NAMES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    spoken = f"{_words(str(whole))} {one if whole == 1 else many}"
    if match.group(3) and int(match.group(3)):
        fraction = int(match.group(3))
        spoken += f" and {_words(str(fraction))} {cent if fraction == 1 else cents}"
    return spoken


def _plural(words: str) -> str:
    """ "nineteen ninety" -> "nineteen nineties"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def spell_numbers(text: str) -> str:
    """Spell out amounts, percentages, ordinals, decades, years and plain numbers.

    Years (1100-2099) are read as years ("nineteen eighty-four") after words such as
    "in", "since" or "by", or before BC/AD; other numbers as cardinals. Numbers glued
    to letters or other signs ("3D", "3:30", "1/2", "-5") are left as digits, which
    makes `spoken_form()` drop the sentence.
    """
    text = _CURRENCY.sub(_money, text)
    text = _PERCENT.sub(lambda m: f"{_words(m.group(1))} percent", text)
    text = _ORDINAL.sub(lambda m: _words(m.group(1), to="ordinal"), text)
    text = _DECADE.sub(lambda m: _plural(_words(m.group(1), to="year")), text)
    text = _YEAR_AFTER_CUE.sub(lambda m: m.group(1) + _words(m.group(2), to="year"), text)
    text = _YEAR_BEFORE_ERA.sub(lambda m: _words(m.group(1), to="year"), text)
    text = _ERAS.sub(lambda m: "before Christ" if m.group(0).startswith("B") else "anno Domini", text)
    text = _DECIMAL.sub(lambda m: _words(m.group(1)), text)
    return _CARDINAL.sub(lambda m: _words(m.group(1).replace(",", "")), text)
