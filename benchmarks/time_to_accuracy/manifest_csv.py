"""Our JSONL manifests as SpeechBrain's data CSV (ID, duration, wav, spk_id, wrd), so that
SpeechBrain trains and tests on the very utterances and transcripts our recipes make.

    python benchmarks/time_to_accuracy/manifest_csv.py EXP/manifests/train.jsonl OUT.csv [--limit N]

Transcripts pass through our `normalize()` (upper case A-Z, apostrophe, single spaces), the
targets our trainer uses. Cuts of longer recordings are refused: SpeechBrain's CSV would need
its own start/stop columns, and the corpora this benchmark uses hold whole files only.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from asr.atomic import atomic_write_text
from asr.data.manifest import ManifestError, read_manifest
from asr.text import normalize

FIELDS = ("ID", "duration", "wav", "spk_id", "wrd")


def manifest_rows(manifest: Path, limit: int | None = None) -> list[dict[str, str]]:
    """The manifest's first `limit` utterances (all: None) as CSV rows; raises ValueError for a
    cut, or for an utterance whose transcript normalises to nothing (nothing to score)."""
    rows = []
    for utterance in read_manifest(manifest)[:limit]:
        if utterance.end is not None:
            raise ValueError(
                f"{manifest}: {utterance.id} is a cut ({utterance.start}-{utterance.end} s); whole files only"
            )
        words = normalize(utterance.text)
        if not words:
            raise ValueError(f"{manifest}: {utterance.id} has no character to score in {utterance.text!r}")
        speaker = utterance.speaker or utterance.id
        rows.append({"ID": utterance.id, "duration": f"{utterance.duration:.4f}", "wav": str(utterance.audio),
                     "spk_id": speaker, "wrd": words})  # fmt: skip
    return rows


def write_csv(manifest: Path, out: Path, limit: int | None = None) -> int:
    """Write `out` (temp file, then rename); returns the number of utterances."""
    rows = manifest_rows(manifest, limit)
    text = io.StringIO()
    writer = csv.DictWriter(text, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out, text.getvalue())
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, help="only the first N utterances (as data.dev_utterances)")
    args = parser.parse_args(argv)
    try:
        count = write_csv(args.manifest, args.out, args.limit)
    except (ManifestError, ValueError, OSError) as error:
        print(f"manifest_csv: {error}", file=sys.stderr)
        return 1
    print(f"{args.out}: {count} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
