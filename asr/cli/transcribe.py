"""`asr transcribe` and `asr align`: the commands that transcribe recordings."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from asr.atomic import atomic_write_text
from asr.cli.arguments import (
    add_model_options,
    comma_names,
    pause_seconds,
    positive_int,
    positive_seconds,
    search_overrides,
)
from asr.errors import UserError
from asr.outputs import output_file, output_folder


def audio_files(inputs: Sequence[Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files to transcribe, each with its output name (no suffix), and one error line per bad input.

    A file argument is taken whatever its suffix and named by its stem; a folder is searched
    recursively for audio suffixes and its files are named by their path inside it.
    """
    from asr.frontend.audio import AUDIO_EXTENSIONS

    files, errors = [], []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in files_under(item) if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if not found:
                errors.append(f"{item}: no audio files in this folder ({', '.join(sorted(AUDIO_EXTENSIONS))})")
            files.extend((path, path.relative_to(item).with_suffix("")) for path in found)
        elif item.exists():
            files.append((item, Path(item.stem)))
        else:
            errors.append(f"{item}: no such file or folder")
    return files, errors


def files_under(folder: Path) -> Iterator[Path]:
    """Every file below `folder`, linked sub-folders followed (each real folder once: a link back up
    the tree is no endless loop), as paths through `folder`."""
    seen = set()
    for root, folders, names in os.walk(folder, followlinks=True):
        info = os.stat(root)
        if (info.st_dev, info.st_ino) in seen:
            folders[:] = []  # walked already, through another path
            continue
        seen.add((info.st_dev, info.st_ino))
        yield from (Path(root) / name for name in names)


def run_transcribe(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from asr.frontend.audio import AudioError, audio_info
    from asr.transcribe import load_model
    from asr.writers import WRITERS

    formats = tuple(WRITERS) if args.format == ("all",) else args.format
    unknown = [name for name in formats if name not in WRITERS]
    if unknown or not formats:
        given = ",".join(unknown) or "(none)"
        raise UserError(f"--format: unknown format {given}; choose from {', '.join(WRITERS)}, or all")
    files, errors = audio_files(args.inputs)
    if args.output_dir is None and len(formats) > 1:
        raise UserError("several --format values need --output-dir (one file per format)")
    if args.output_dir is not None:
        targets: dict[Path, Path] = {}
        for path, name in files:
            if name in targets:
                raise UserError(
                    f"{targets[name]} and {path} would both write {args.output_dir / name}.*; "
                    "transcribe them into different --output-dir folders"
                )
            targets[name] = path
        output_folder(args.output_dir, "--output-dir")
    model = load_model(args.model, args.device, lm=args.lm, int8=args.int8)
    config = model.config(
        args.batch_size, args.max_seconds, args.word_timestamps, sentence_pause=args.sentence_pause,
        **search_overrides(args),
    )  # fmt: skip
    for line in errors:
        print(f"asr: error: {line}", file=sys.stderr)
    durations = []
    for path, _ in files:
        try:
            durations.append(audio_info(path).duration)
        except AudioError:
            durations.append(0.0)  # reported when its turn comes
    show = len(files) > 1 or any(d > config.segmenter.max_seconds for d in durations)
    bar = tqdm(total=round(sum(durations), 1), unit="s", desc="transcribing", disable=None if show else True)
    failures = len(errors)
    left_out: dict[Path, tuple[float, float]] = {}  # each transcript's (seconds no decoded piece covers, duration)
    with bar:
        results = model.transcribe_all([path for path, _ in files], config, progress=lambda s: bar.update(round(s, 1)))
        for index, result in results:
            path, name = files[index]
            if isinstance(result, AudioError):
                tqdm.write(f"asr: error: {result}", file=sys.stderr)
                failures += 1
                continue
            left_out[path] = (result.left_out, result.duration)
            decoded = result.duration - result.left_out
            if not result.text and decoded > 0:  # audio was decoded: an empty transcript says so
                tqdm.write(f"asr: {path}: {decoded:.1f} s of audio decoded; the model spelled no word", file=sys.stderr)
            if args.output_dir is not None:
                try:
                    for fmt in formats:
                        atomic_write_text(args.output_dir / f"{name}.{fmt}", WRITERS[fmt](result))
                except OSError as error:  # a full disk, a folder that went away: report, go on with the rest
                    where = error.filename or args.output_dir / name
                    tqdm.write(f"asr: error: {where}: {(error.strerror or str(error)).lower()}", file=sys.stderr)
                    failures += 1
            else:
                tqdm.write(printed(formats[0], WRITERS[formats[0]](result), path if len(files) > 1 else None), end="")
    print_left_out(left_out)
    return 1 if failures else 0


def print_left_out(left_out: dict[Path, tuple[float, float]]) -> None:
    """One line on stderr when audio was left out as silence: how much of how much, and the file with the most."""
    total = sum(seconds for seconds, _ in left_out.values())
    if round(total, 1) == 0:
        return
    duration = sum(seconds for _, seconds in left_out.values())
    most = max(left_out, key=lambda path: left_out[path][0])
    where = f" (the most: {left_out[most][0]:.1f} s of {most})" if len(left_out) > 1 else ""
    print(f"asr: {total:.1f} s of the {duration:.1f} s of audio judged silent and not decoded{where}", file=sys.stderr)


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
"""A backslash, tab, newline and carriage return in a file name, written as JSON writes them."""


def printed(fmt: str, text: str, path: Path | None) -> str:
    """What stdout shows of one transcript; `path` is given when several files share stdout:
    txt becomes a `path<TAB>text` line, json stays one object a line, the others get a header.
    A tab, newline, carriage return or backslash in the path is escaped as in JSON (a tab is `\\t`)."""
    if path is None or fmt == "json":
        return text
    name = str(path).translate(_ESCAPES)
    return f"{name}\t{text}" if fmt == "txt" else f"==> {name} <==\n{text}"


def add_transcribe(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "transcribe",
        help="transcribe audio files or folders",
        description="Transcribe audio files (any format soundfile reads, any rate, any channels) and folders "
        "(searched recursively). Long recordings are cut at pauses; pieces of all files are decoded in batches. "
        "Output goes to stdout (with several files: txt as 'path<TAB>text' lines, json as JSON Lines, the rest "
        "under '==> path <==' headers; a tab, newline or backslash in a path is escaped as in JSON) or to "
        "--output-dir as NAME.FORMAT. A bad file is reported and skipped; the exit status is 1 if any input failed.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR", help="audio files or folders")
    add_model_options(parser)
    parser.add_argument(
        "--format", type=comma_names, default=("txt",), help="txt, json, srt, vtt, tsv, comma-separated, or all"
    )
    parser.add_argument("--output-dir", type=Path, help="write NAME.FORMAT files here instead of printing")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="pieces per batch (default: %(default)s)")
    parser.add_argument(
        "--max-seconds",
        type=positive_seconds,
        help="cut recordings into pieces of at most this many seconds (default: the longest training utterance)",
    )
    parser.add_argument(
        "--sentence-pause",
        type=pause_seconds,
        help="cut even a short recording at pauses this long, a sentence a piece; inf: never "
        "(default: 0.8, asr.frontend.segmentation.SegmenterConfig)",
    )
    parser.add_argument(
        "--word-timestamps", action="store_true", help="estimate word times from attention (json output)"
    )
    parser.set_defaults(run=run_transcribe)


def run_align(args: argparse.Namespace) -> None:
    from asr.plotting import attention_figure, save_figure
    from asr.transcribe import load_model

    output_file(args.plot, "--plot", inputs=[args.file])
    model = load_model(args.model, args.device)
    alignment = model.align(args.file, **search_overrides(args))
    characters = [*alignment.hypothesis.text, "<eos>"]
    title = f"{args.file.name} {alignment.start:.2f}-{alignment.end:.2f} s: {alignment.hypothesis.text}"
    figure = attention_figure(
        alignment.hypothesis.attention.numpy(),
        characters,
        alignment.features.numpy(),
        alignment.frame_seconds,
        title,
    )
    save_figure(figure, args.plot)
    print(f"{args.plot}: {alignment.hypothesis.text}")


def add_align(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "align",
        help="plot a recording's attention alignment",
        description="Decode one recording and draw the speller's attention over its spectrogram, one row per "
        "output character, as a PNG. A recording longer than the model's longest training utterance is "
        "plotted for its first piece.",
    )
    parser.add_argument("file", type=Path, help="audio file")
    add_model_options(parser, lm=False)
    parser.add_argument("--plot", required=True, type=Path, help="PNG file to write")
    parser.set_defaults(run=run_align)
