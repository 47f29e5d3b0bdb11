"""A Common Voice language folder: cv-corpus-*/<lang>/ holding <split>.tsv tables and clips/*.mp3.

Each table is tab-separated with a header row and no quoting (a sentence may hold quote
marks); its columns are read by name (`client_id`, `path`, `sentence`), since releases add
others (sentence_id, up_votes, age, gender, accents, variant, locale, segment, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asr.data.manifest import ManifestError
from asr.data.prepare.common import Candidate, PrepareConfig, PrepareReport, Skips, read_text, write_prepared
from asr.progress import Track, no_progress
from asr.text import TextConfig

SPLITS = ("train", "dev", "test", "validated", "invalidated", "other")
"""The tables of a language folder that list clips with their sentences."""

TEXT = TextConfig("unicode")
"""The normaliser Common Voice is trained with (recipes/commonvoice/conf/train.yaml): any script's letters."""

COLUMNS = ("client_id", "path", "sentence")
"""The columns an importer needs: the speaker, the clip's file name under clips/, the transcript."""


def _is_language_folder(folder: Path) -> bool:
    return (folder / "clips").is_dir()


def find_language_folder(root: Path, language: str | None = None) -> Path:
    """The language folder of `root`: `root` itself (it holds clips/), or the one `<lang>/` below it
    or below one `cv-corpus-*/` in it; `language` chooses among several. A one-line `ManifestError`
    when there is none, or more than one to choose from."""
    if not root.is_dir():
        raise ManifestError(f"{root}: no such folder")
    if _is_language_folder(root):
        if language is not None and root.name != language:
            raise ManifestError(f"{root}: is the Common Voice folder of '{root.name}', not of '{language}'")
        return root
    found = sorted(f for f in [*root.glob("*"), *root.glob("cv-corpus-*/*")] if _is_language_folder(f))
    if language is not None:
        chosen = [f for f in found if f.name == language]
        if not chosen:
            languages = ", ".join(sorted({f.name for f in found})) or "none"
            raise ManifestError(f"{root}: no Common Voice folder of language '{language}' (found: {languages})")
        found = chosen
    if not found:
        raise ManifestError(
            f"{root}: no Common Voice language folder (cv-corpus-*/<lang>/ holding clips/ and the .tsv tables)"
        )
    if len({f.name for f in found}) > 1:
        languages = ", ".join(sorted({f.name for f in found}))
        raise ManifestError(f"{root}: holds several Common Voice languages ({languages}); choose one with --language")
    if len(found) > 1:
        releases = ", ".join(str(f) for f in found)
        raise ManifestError(f"{root}: holds several Common Voice releases of '{found[0].name}' ({releases}); give one")
    return found[0]


def _commonvoice_candidates(table: Path, clips: Path, skips: Skips) -> list[Candidate]:
    """One candidate a row of `table`: id the clip's stem, speaker its client_id, audio clips/<path>."""
    lines = read_text(table).split("\n")  # not splitlines(): a sentence may hold U+2028 or U+0085
    if not lines[0].strip():
        raise ManifestError(f"{table}:1: no header row; a Common Voice table's first line names its columns")
    header = [name.strip() for name in lines[0].rstrip("\r").split("\t")]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise ManifestError(
            f"{table}: no {', '.join(repr(m) for m in missing)} column in the header; a Common Voice table "
            f"names {', '.join(COLUMNS)} (found: {', '.join(header)})"
        )
    speaker_column, path_column, sentence_column = (header.index(name) for name in COLUMNS)
    candidates = []
    listed: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        row = line.split("\t")
        if len(row) != len(header):
            skips.add("malformed row", f"{table}:{number}: {len(row)} fields, the header has {len(header)}")
            continue
        name, sentence = row[path_column].strip(), row[sentence_column].strip()
        if not name:
            skips.add("malformed row", f"{table}:{number}: no clip in the 'path' column")
            continue
        if not sentence:
            skips.add("no sentence", f"{table}:{number}: {name}")
            continue
        if name in listed:
            skips.add("clip listed again", f"{table}:{number}: {name} is on line {listed[name]} already")
            continue
        listed[name] = number
        audio = clips / name
        if not audio.is_file():
            skips.add("missing audio", f"{table}:{number}: {audio}")
            continue
        candidates.append(Candidate(audio.stem, audio, sentence, row[speaker_column].strip() or None))
    return candidates


def prepare_commonvoice(
    root: str | Path,
    splits: Sequence[str],
    out_dir: str | Path,
    config: PrepareConfig | None = None,
    track: Track = no_progress,
    language: str | None = None,
) -> list[PrepareReport]:
    """Write `out_dir/<split>.jsonl` for each split (train, dev, test, validated, ...) of a Common
    Voice language folder.

    `root` is the language folder (`cv-corpus-*/<lang>/`), or a folder holding one, or the
    `cv-corpus-*` folder; `language` (e.g. "de") chooses when there are several. The
    utterance id is the clip's file stem, the speaker its `client_id`; the sentence is kept as
    it is written. Rows without a sentence, malformed rows, clips listed twice and missing clips
    are counted, logged and skipped. `config` None: the defaults of `PrepareConfig` with `TEXT`.
    """
    config = config or PrepareConfig(text=TEXT)
    if not splits:
        raise ManifestError("no splits given (e.g. train,dev,test)")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ManifestError(f"unknown Common Voice split '{unknown[0]}'; the splits are {', '.join(SPLITS)}")
    folder = find_language_folder(Path(root).absolute(), language)
    for split in splits:
        if not (folder / f"{split}.tsv").is_file():
            raise ManifestError(f"{folder}: no {split}.tsv; a Common Voice language folder holds one table a split")
    reports = []
    for split in splits:
        skips = Skips()
        table = folder / f"{split}.tsv"
        candidates = _commonvoice_candidates(table, folder / "clips", skips)
        reports.append(write_prepared(table, Path(out_dir) / f"{split}.jsonl", candidates, skips, config, track))
    return reports
