"""The table of recipes/synthetic/multilingual.sh: one row per language's experiment folder, from its
test set's summary.json, its model's config.yaml and its last checkpoint.

    python recipes/synthetic/local/language_table.py EXP/en EXP/de ... [--command "..."]

Each row: the language, the normaliser, the test set's size, WER, CER (the primary figure in
bold), the insertion rate (per hundred words, or characters where CER is primary), the search,
and the minutes and epochs the training took (its last checkpoint's). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from asr.checkpoint import list_checkpoints, load_training_state

LANGUAGE_NAMES = {"en": "English", "de": "German", "es": "Spanish", "zh": "Mandarin"}


def row(exp: Path) -> str:
    """One language's row; `exp` is named after the language's code."""
    summary = json.loads((exp / "eval" / "test" / "summary.json").read_text(encoding="utf-8"))
    text = yaml.safe_load((exp / "model" / "config.yaml").read_text(encoding="utf-8")).get("text") or {}
    progress = load_training_state(list_checkpoints(exp / "checkpoints")[-1])["progress"]
    normalizer = text.get("normalizer", "english") + ("" if text.get("spaces", True) else ", no spaces")
    wer, cer = f"{summary['wer']:.2f}", f"{summary['cer']:.2f}"
    if summary.get("metric") == "cer":
        cer, insertion_rate = f"**{cer}**", 100 * summary["char_insertions"] / summary["chars"]
    else:
        wer, insertion_rate = f"**{wer}**", 100 * summary["insertions"] / summary["words"]
    words = summary["words"]
    if not text.get("spaces", True):  # no word is written apart: a "word" is a sentence
        words = wer = "-"
    search = summary["search"]
    name = LANGUAGE_NAMES.get(exp.name, exp.name)
    return (
        f"| {name} | {normalizer} | {summary['utterances']} | {words} | {summary['chars']} | {wer} | {cer} "
        f"| {insertion_rate:.2f} | beam {search['beam']}, CTC weight {search['ctc_weight']:g}, LM weight "
        f"{search['lm_weight']:g} | {progress['seconds'] / 60:.1f} min, {progress['epoch']} epochs |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", type=Path, help="EXP/<language> folders")
    parser.add_argument("--command", default="", help="the command that made them (written above the table)")
    args = parser.parse_args()
    missing = [str(exp / "eval" / "test" / "summary.json") for exp in args.experiments]
    missing = [path for path in missing if not Path(path).is_file()]
    if missing:
        print(f"language_table.py: {missing[0]}: no such file; has the language been evaluated?", file=sys.stderr)
        return 2
    lines = ["# Synthetic speech in several languages: held-out voices", ""]
    if args.command:
        lines += [f"Command: `{args.command}`.", ""]
    lines += [
        "The primary figure of each language is in bold (CER where words are not written apart).",
        "",
        "| language | normaliser | test utterances | words | characters | WER % | CER % | insertion rate % "
        "| search | training |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(row(exp) for exp in args.experiments),
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
