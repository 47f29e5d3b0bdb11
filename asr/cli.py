"""The `asr` command: argparse sub-commands over the library.

A user's mistake (a `UserError`) becomes one line on stderr and exit status 1;
usage errors exit with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from asr import __version__
from asr.atomic import atomic_write_text
from asr.data import manifest_stats, read_manifest
from asr.errors import UserError
from asr.features import FeatureConfig
from asr.prepare import PrepareConfig, PrepareReport, prepare_kaldi, prepare_librispeech, prepare_tsv

T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A progress bar on stderr (hidden when stderr is not a terminal and CI is set)."""
    return tqdm(items, total=total, desc=description, unit="utt", dynamic_ncols=True, disable=None)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text}")
    return value


def writable_folder(folder: Path) -> None:
    """Create `folder` if needed and check that files can be written in it, before any work is done."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: is a file, not a folder; give --output-dir a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{folder}: cannot create the folder ({(error.strerror or str(error)).lower()})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: permission denied (cannot write into this folder)")


def default_jobs() -> int:
    return min(8, os.cpu_count() or 1)


def prepare_config(args: argparse.Namespace) -> PrepareConfig:
    return PrepareConfig(jobs=args.jobs, verify=args.verify, expand_numbers=args.expand_numbers)


def print_report(report: PrepareReport) -> None:
    """The summary line, then one line per kind of transcript text that normalisation loses."""
    print(report.summary())
    for note in report.notes:
        print(f"{report.manifest}: {note}")


def run_prepare_librispeech(args: argparse.Namespace) -> None:
    subsets = [s.strip() for s in args.subsets.split(",") if s.strip()]
    for report in prepare_librispeech(args.root, subsets, args.out, prepare_config(args), track=progress):
        print_report(report)


def run_prepare_tsv(args: argparse.Namespace) -> None:
    print_report(prepare_tsv(args.file, args.out, prepare_config(args), track=progress))


def run_prepare_kaldi(args: argparse.Namespace) -> None:
    print_report(prepare_kaldi(args.dir, args.out, prepare_config(args), track=progress))


def add_prepare_options(parser: argparse.ArgumentParser) -> None:
    """--jobs, --verify and --expand-numbers, shared by every `prepare` corpus."""
    parser.add_argument(
        "--jobs", type=positive_int, default=default_jobs(), help="audio files read at once (default: %(default)s)"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="decode every audio file once and skip those that fail (slower; a header read misses cut-off files)",
    )
    parser.add_argument(
        "--expand-numbers", action="store_true", help="write digits in transcripts as words (42 -> forty-two)"
    )


def run_stats(args: argparse.Namespace) -> None:
    features = FeatureConfig()
    if args.config is not None:
        from asr.config import load_config
        from asr.training import TrainConfig

        features = load_config(TrainConfig, args.config).features
    utterances = read_manifest(args.manifest)
    stats = manifest_stats(utterances, features, jobs=args.jobs, track=progress)
    stats.save(args.out)
    print(f"{args.out}: mean/std of {stats.frames} frames from {len(utterances)} utterances")


def run_train(args: argparse.Namespace) -> None:
    from asr.config import load_config
    from asr.training import TrainConfig, train

    config = load_config(TrainConfig, args.config, args.set)
    logging.getLogger("asr.training").setLevel(logging.INFO)  # validation results, resume, export
    model_dir = train(config, args.out, device=args.device, track=progress)
    print(f"{model_dir}: model directory")


def run_average(args: argparse.Namespace) -> None:
    from asr.config import load_config
    from asr.training import TrainConfig, export_average

    config = load_config(TrainConfig, args.exp_dir / "config.yaml")
    out = args.out or args.exp_dir / "model"
    count = export_average(args.exp_dir, config, args.best, out)
    print(f"{out}: average of {count} checkpoints")


def run_evaluate(args: argparse.Namespace) -> None:
    from asr.checkpoint import load_model_dir
    from asr.device import choose_device
    from asr.evaluation import evaluate
    from asr.lm import load_lm
    from asr.recognize import search_settings

    groups = read_groups(args.groups) if args.groups is not None else None
    loaded = load_model_dir(args.model, choose_device(args.device))
    lm = load_lm(args.lm, loaded.device, loaded.vocab) if args.lm is not None else None
    overrides = {"beam": args.beam, "ctc_weight": args.ctc_weight, "lm_weight": args.lm_weight}
    search = search_settings(loaded.decoding, loaded.model, lm, length_bonus=args.length_bonus, **overrides)
    corpus = evaluate(loaded, args.manifest, args.out, search, args.batch_size, args.jobs, progress, groups, lm)
    print(f"{args.manifest}: {corpus.summary()}")


def add_lm_options(parser: argparse.ArgumentParser) -> None:
    """--lm, --lm-weight and --length-bonus: shallow fusion with a character LM in the search."""
    parser.add_argument("--lm", type=Path, help="character LM directory (asr lm train's EXP_DIR/model) to fuse")
    parser.add_argument("--lm-weight", type=float, help="weight of the LM's log-probabilities (default: the model's)")
    parser.add_argument(
        "--length-bonus", type=float, help="added to the score of every character, against an LM's short bias"
    )


def read_groups(path: Path) -> dict[str, str]:
    """A `speaker group` table (one pair a line, as Kaldi's spk2gender) -> speaker -> group."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UserError(f"{path}: {(error.strerror or str(error)).lower()}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (invalid UTF-8)") from None
    groups = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise UserError(f"{path}:{number}: expected 'speaker group', found {line.strip()!r}")
        groups[fields[0]] = fields[1]
    return groups


def run_split(args: argparse.Namespace) -> None:
    from asr.data import split_by_speaker, write_manifest

    kept, held = split_by_speaker(read_manifest(args.manifest), args.held_out, args.seed)
    write_manifest(args.out_kept, kept)
    write_manifest(args.out_held, held)
    for path, part in ((args.out_kept, kept), (args.out_held, held)):
        print(f"{path}: {len(part)} utterances, {len({u.speaker for u in part})} speakers")


def comma_names(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def comma_numbers(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated numbers."""
    try:
        return tuple(float(part) for part in comma_names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def run_synthesize(args: argparse.Namespace) -> None:
    from asr.synthesis.corpus import CheckConfig, CorpusConfig, CorpusError, check_corpus, synthesize_corpus
    from asr.synthesis.engines import available_engines

    if not args.check_only:
        engines = tuple(available_engines()) if args.engines == ("available",) else args.engines
        config = CorpusConfig(
            train_utterances=args.train_utterances,
            dev_utterances=args.dev_utterances,
            test_utterances=args.test_utterances,
            chapter_utterances=args.chapter_utterances,
            engines=engines,
            texts=args.texts,
            vocabulary=args.vocabulary,
            rates=args.rates,
            pitches=args.pitches,
            held_out_voice_fraction=args.held_out_voice_fraction,
            noise_prob=args.noise_prob,
            snr_db=args.snr,
            seed=args.seed,
        )
        report = synthesize_corpus(args.out, config, jobs=args.jobs, track=progress)
        print(f"{report.root}: synthesised {report.synthesized} utterances now")
        for subset in report.subsets:
            print(subset.summary())
    problems = check_corpus(args.out, CheckConfig(), jobs=args.jobs)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise CorpusError(f"{args.out}: the check found {len(problems)} broken files (listed above)")


def add_synthesize(commands: argparse._SubParsersAction) -> None:
    from asr.synthesis.corpus import CorpusConfig
    from asr.synthesis.engines import ENGINES
    from asr.synthesis.sentences import SOURCES

    defaults = CorpusConfig()
    parser = commands.add_parser(
        "synthesize",
        help="build a speech corpus in the LibriSpeech layout with TTS voices",
        description="Synthesise OUT/{train,dev,test}/<speaker>/<chapter>/ with espeak-ng, flite and festival "
        "voices reading free English texts (disjoint in voices and sentences), then check every file. "
        "Re-running with the same settings resumes.",
    )
    parser.add_argument("--out", type=Path, required=True, help="corpus root folder")
    parser.add_argument("--train-utterances", type=int, default=defaults.train_utterances)
    parser.add_argument("--dev-utterances", type=int, default=defaults.dev_utterances)
    parser.add_argument("--test-utterances", type=int, default=defaults.test_utterances)
    parser.add_argument(
        "--chapter-utterances",
        type=positive_int,
        default=defaults.chapter_utterances,
        help="utterances per chapter (one engine process per chapter for festival)",
    )
    parser.add_argument(
        "--engines",
        type=comma_names,
        default=ENGINES,
        help=f"comma-separated, from {','.join(ENGINES)}; or 'available' for the installed ones",
    )
    parser.add_argument("--texts", type=comma_names, default=defaults.texts, help=f"from {','.join(SOURCES)}")
    parser.add_argument(
        "--vocabulary",
        type=int,
        default=defaults.vocabulary,
        help="keep only sentences made of the N most frequent words of the texts (default: all sentences)",
    )
    parser.add_argument(
        "--rates", type=comma_numbers, default=defaults.rates, help="speed factors (default 0.85,1,1.15)"
    )
    parser.add_argument("--pitches", type=comma_numbers, default=defaults.pitches, help="semitones (default -2,0,2)")
    parser.add_argument(
        "--held-out-voice-fraction",
        type=float,
        default=defaults.held_out_voice_fraction,
        help="share of the talkers that dev, and test, each get (default %(default)s)",
    )
    parser.add_argument(
        "--noise-prob", type=float, default=defaults.noise_prob, help="probability of adding coloured noise"
    )
    parser.add_argument("--snr", type=comma_numbers, default=defaults.snr_db, help="SNR range in dB (default 5,30)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--jobs", type=positive_int, default=default_jobs(), help="parallel chapters")
    parser.add_argument("--check-only", action="store_true", help="only check the files already under --out")
    parser.set_defaults(run=run_synthesize)


def audio_files(inputs: Sequence[Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files to transcribe, each with its output name (no suffix), and one error line per bad input.

    A file argument is taken whatever its suffix and named by its stem; a folder is searched
    recursively for audio suffixes and its files are named by their path inside it.
    """
    from asr.audio import AUDIO_EXTENSIONS

    files, errors = [], []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if not found:
                errors.append(f"{item}: no audio files in this folder ({', '.join(sorted(AUDIO_EXTENSIONS))})")
            files.extend((path, path.relative_to(item).with_suffix("")) for path in found)
        elif item.exists():
            files.append((item, Path(item.stem)))
        else:
            errors.append(f"{item}: no such file or folder")
    return files, errors


def run_transcribe(args: argparse.Namespace) -> int:
    from asr.audio import AudioError, audio_info
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
    model = load_model(args.model, args.device, lm=args.lm)
    config = model.config(
        args.beam, args.ctc_weight, args.batch_size, args.max_seconds, args.word_timestamps, args.lm_weight,
        args.length_bonus,
    )  # fmt: skip
    if args.output_dir is not None:
        writable_folder(args.output_dir)
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
    with bar:
        results = model.transcribe_all([path for path, _ in files], config, progress=lambda s: bar.update(round(s, 1)))
        for index, result in results:
            path, name = files[index]
            if isinstance(result, AudioError):
                tqdm.write(f"asr: error: {result}", file=sys.stderr)
                failures += 1
            elif args.output_dir is not None:
                try:
                    for fmt in formats:
                        atomic_write_text(args.output_dir / f"{name}.{fmt}", WRITERS[fmt](result))
                except OSError as error:  # a full disk, a folder that went away: report, go on with the rest
                    where = error.filename or args.output_dir / name
                    tqdm.write(f"asr: error: {where}: {(error.strerror or str(error)).lower()}", file=sys.stderr)
                    failures += 1
            else:
                tqdm.write(printed(formats[0], WRITERS[formats[0]](result), path if len(files) > 1 else None), end="")
    return 1 if failures else 0


def printed(fmt: str, text: str, path: Path | None) -> str:
    """What stdout shows of one transcript; `path` is given when several files share stdout:
    txt becomes a `path<TAB>text` line, json stays one object a line, the others get a header."""
    if path is None or fmt == "json":
        return text
    return f"{path}\t{text}" if fmt == "txt" else f"==> {path} <==\n{text}"


def add_transcribe(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "transcribe",
        help="transcribe audio files or folders",
        description="Transcribe audio files (any format soundfile reads, any rate, any channels) and folders "
        "(searched recursively). Long recordings are cut at pauses; pieces of all files are decoded in batches. "
        "Output goes to stdout (with several files: txt as 'path<TAB>text' lines, json as JSON Lines, the rest "
        "under '==> path <==' headers) or to --output-dir as NAME.FORMAT. A bad file is reported and skipped; "
        "the exit status is 1 if any input failed.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR", help="audio files or folders")
    parser.add_argument("--model", required=True, type=Path, help="model directory (asr train's EXP_DIR/model)")
    parser.add_argument(
        "--format", type=comma_names, default=("txt",), help="txt, json, srt, vtt, tsv, comma-separated, or all"
    )
    parser.add_argument("--output-dir", type=Path, help="write NAME.FORMAT files here instead of printing")
    parser.add_argument("--beam", type=positive_int, help="beam size (default: the model's; 1 is greedy)")
    parser.add_argument("--ctc-weight", type=float, help="joint CTC weight (default: the model's)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="pieces per batch (default: %(default)s)")
    parser.add_argument(
        "--max-seconds",
        type=positive_seconds,
        help="cut recordings into pieces of at most this many seconds (default: the longest training utterance)",
    )
    parser.add_argument(
        "--word-timestamps", action="store_true", help="estimate word times from attention (json output)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    add_lm_options(parser)
    parser.set_defaults(run=run_transcribe)


def run_align(args: argparse.Namespace) -> None:
    from asr.plotting import attention_figure, save_figure
    from asr.transcribe import load_model

    model = load_model(args.model, args.device)
    alignment = model.align(args.file, beam=args.beam)
    characters = [*alignment.hypothesis.text, "<eos>"]
    title = f"{args.file.name} {alignment.start:.2f}-{alignment.end:.2f} s: {alignment.hypothesis.text}"
    figure = attention_figure(
        alignment.hypothesis.attention.numpy(),
        characters,
        alignment.features.numpy(),
        model.loaded.features.hop_ms / 1000,
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
    parser.add_argument("--model", required=True, type=Path, help="model directory")
    parser.add_argument("--plot", required=True, type=Path, help="PNG file to write")
    parser.add_argument("--beam", type=positive_int, help="beam size (default: the model's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    parser.set_defaults(run=run_align)


def run_lm_train(args: argparse.Namespace) -> None:
    import dataclasses

    from asr.config import load_config
    from asr.device import choose_device
    from asr.lm.training import LMTrainConfig, LMTrainer

    config = load_config(LMTrainConfig, args.config, args.set)
    dev = str(args.dev_text) if args.dev_text is not None else config.data.dev
    data = dataclasses.replace(config.data, train=tuple(map(str, args.text)), dev=dev)
    config = dataclasses.replace(config, data=data)
    logging.getLogger("asr.lm.training").setLevel(logging.INFO)  # validation results, resume, export
    trainer = LMTrainer(config, args.out, choose_device(args.device), track=progress)
    print(trainer.text_report.summary())
    print(f"{trainer.run()}: LM directory")


def run_lm_evaluate(args: argparse.Namespace) -> None:
    from asr.device import choose_device
    from asr.lm import evaluate_lm, load_lm, read_text

    model = load_lm(args.model, choose_device(args.device))
    corpus, report = read_text(args.text)
    print(report.summary())
    print(f"{', '.join(map(str, args.text))}: {evaluate_lm(model, corpus, args.max_tokens, progress).summary()}")


def run_lm_text(args: argparse.Namespace) -> None:
    from asr.lm import lm_text, transcripts, write_lm_text

    if args.transcripts:
        count = write_lm_text(transcripts(args.transcripts), args.out)
        print(f"{args.out}: {count:,} transcripts of {', '.join(map(str, args.transcripts))}")
        return
    text = lm_text(args.sources, args.exclude)
    write_lm_text(text.sentences, args.out)
    print(f"{args.out}: {text.summary()}")


def add_lm(commands: argparse._SubParsersAction) -> None:
    from asr.synthesis.sentences import SOURCES

    lm = commands.add_parser(
        "lm",
        help="train and evaluate a character language model for shallow fusion",
        description="A character LSTM language model over the acoustic model's vocabulary: write its text, "
        "train it (re-running resumes), evaluate it.",
    )
    actions = lm.add_subparsers(dest="lm_command", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help="train an LM on text files (re-running resumes)",
        description="Train a character LM on text files of one sentence a line, normalised as transcripts are; "
        "re-running the same command on EXP_DIR resumes. Writes EXP_DIR/model (the best weights by dev perplexity, "
        "or the last ones without --dev-text).",
    )
    train.add_argument("--config", required=True, type=Path, help="YAML config of plain values")
    train.add_argument("--text", required=True, nargs="+", type=Path, metavar="FILE", help="training text files")
    train.add_argument("--dev-text", type=Path, metavar="FILE", help="dev text for perplexity at each validation")
    train.add_argument("--out", required=True, type=Path, help="experiment folder (EXP_DIR)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. model.units=256"
    )
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    train.set_defaults(run=run_lm_train)

    evaluate = actions.add_parser(
        "evaluate",
        help="bits per character and perplexity of an LM on text files",
        description="Score text files (one sentence a line, normalised) with an LM directory: corpus-level bits per "
        "character and perplexity over the characters and one <eos> per sentence.",
    )
    evaluate.add_argument("--model", required=True, type=Path, help="LM directory (asr lm train's EXP_DIR/model)")
    evaluate.add_argument("--text", required=True, nargs="+", type=Path, metavar="FILE", help="text files")
    evaluate.add_argument(
        "--max-tokens", type=positive_int, default=20000, help="padded tokens per batch (default: %(default)s)"
    )
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    evaluate.set_defaults(run=run_lm_evaluate)

    text = actions.add_parser(
        "text",
        help="write LM training text from the synthetic recipe's sources",
        description="Write the normalised sentences of Debian text packages, one a line, without any sentence "
        "that a manifest given to --exclude holds (test and dev sets); or, with --transcripts, the normalised "
        "transcripts of manifests (a dev text).",
    )
    what = text.add_mutually_exclusive_group()
    what.add_argument("--sources", type=comma_names, default=tuple(SOURCES), help=f"from {','.join(SOURCES)}")
    what.add_argument("--transcripts", nargs="+", type=Path, metavar="MANIFEST", help="write these transcripts")
    text.add_argument("--exclude", nargs="*", default=[], type=Path, metavar="MANIFEST", help="manifests to hold out")
    text.add_argument("--out", required=True, type=Path, help="text file to write")
    text.set_defaults(run=run_lm_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Listen, Attend and Spell speech recognition: prepare data, train, evaluate, transcribe.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    prepare = commands.add_parser(
        "prepare", help="write JSONL manifests from a corpus", description="Write JSONL manifests."
    )
    corpora = prepare.add_subparsers(dest="corpus", metavar="CORPUS", required=True)
    libri = corpora.add_parser(
        "librispeech",
        help="a LibriSpeech-layout tree",
        description="Write OUT/<subset>.jsonl for each subset of a LibriSpeech-layout tree.",
    )
    libri.add_argument("root", type=Path, help="folder holding the subsets, or holding LibriSpeech/")
    libri.add_argument("--subsets", required=True, help="comma-separated, e.g. dev-clean,test-clean")
    libri.add_argument("--out", required=True, type=Path, help="output folder")
    add_prepare_options(libri)
    libri.set_defaults(run=run_prepare_librispeech)
    tsv = corpora.add_parser(
        "tsv",
        help="a tab-separated table of audio paths and transcripts",
        description="Write a manifest from a TSV file whose header names an audio column (audio, path or file) "
        "and a text column; paths are relative to the file's folder.",
    )
    tsv.add_argument("file", type=Path, help="the TSV file")
    tsv.add_argument("--out", required=True, type=Path, help="output manifest (.jsonl)")
    add_prepare_options(tsv)
    tsv.set_defaults(run=run_prepare_tsv)
    kaldi = corpora.add_parser(
        "kaldi",
        help="a Kaldi data directory (wav.scp, text, optional utt2spk and segments)",
        description="Write a manifest from a Kaldi data directory. Relative wav.scp paths are taken from the "
        "current folder, else the directory's parent, grandparent or the directory itself (whichever holds "
        "them); commands (... |) are refused. With segments, each line also holds start and end in seconds.",
    )
    kaldi.add_argument("dir", type=Path, help="the data directory, e.g. data/train")
    kaldi.add_argument("--out", required=True, type=Path, help="output manifest (.jsonl)")
    add_prepare_options(kaldi)
    kaldi.set_defaults(run=run_prepare_kaldi)

    stats = commands.add_parser(
        "stats",
        help="feature normalisation statistics of a training manifest",
        description="Compute the global mean and standard deviation of the log-mel features of a manifest; "
        "the file records the feature settings, and training refuses statistics of other settings.",
    )
    stats.add_argument("manifest", type=Path, help="training manifest (.jsonl)")
    stats.add_argument("--out", required=True, type=Path, help="output statistics file (.json)")
    stats.add_argument(
        "--config", type=Path, help="training config whose features section to use (default: the default features)"
    )
    stats.add_argument("--jobs", type=positive_int, default=2, help="audio decoding workers (default: %(default)s)")
    stats.set_defaults(run=run_stats)

    train = commands.add_parser(
        "train",
        help="train a model (re-running resumes)",
        description="Train a LAS model from a YAML config; re-running the same command on EXP_DIR resumes. "
        "Under torchrun (torchrun --nproc_per_node=N -m asr train ...) each process drives one GPU.",
    )
    train.add_argument("--config", required=True, type=Path, help="YAML config of plain values")
    train.add_argument("--out", required=True, type=Path, help="experiment folder (EXP_DIR)")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. optim.schedule.lr=5e-4",
    )
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    train.set_defaults(run=run_train)

    average = commands.add_parser(
        "average",
        help="average the best checkpoints into a model directory",
        description="Average the best N kept weights of EXP_DIR (by dev WER) and export a model directory.",
    )
    average.add_argument("exp_dir", type=Path, help="experiment folder of asr train")
    average.add_argument("--best", type=positive_int, default=5, help="how many to average (default: %(default)s)")
    average.add_argument("--out", type=Path, help="model directory to write (default: EXP_DIR/model)")
    average.set_defaults(run=run_average)

    evaluate = commands.add_parser(
        "evaluate",
        help="decode a manifest and report WER/CER",
        description="Decode a manifest in batches and write hyps.jsonl, summary.json and report.txt to OUT.",
    )
    evaluate.add_argument("--model", required=True, type=Path, help="model directory")
    evaluate.add_argument("--manifest", required=True, type=Path, help="manifest to evaluate (.jsonl)")
    evaluate.add_argument("--out", required=True, type=Path, help="output folder")
    evaluate.add_argument("--beam", type=positive_int, help="beam size (default: the model's; 1 is greedy)")
    evaluate.add_argument("--ctc-weight", type=float, help="joint CTC weight at decoding (default: the model's)")
    evaluate.add_argument(
        "--batch-size", type=positive_int, default=16, help="utterances per batch (default: %(default)s)"
    )
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    evaluate.add_argument(
        "--jobs", type=non_negative_int, default=2, help="audio decoding workers, 0: none (default: %(default)s)"
    )
    evaluate.add_argument(
        "--groups", type=Path, help="a 'speaker group' table: adds each group's WER to summary.json and report.txt"
    )
    add_lm_options(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    split = commands.add_parser(
        "split",
        help="hold out a share of a manifest's speakers",
        description="Split a manifest in two by speaker (seeded): the held-out speakers' utterances, e.g. a dev "
        "set that shares no speaker with training, and the rest.",
    )
    split.add_argument("manifest", type=Path, help="manifest to split (.jsonl); every utterance needs a speaker")
    split.add_argument("--held-out", type=float, default=0.1, help="share of the speakers (default: %(default)s)")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--out-kept", required=True, type=Path, help="manifest of the other speakers")
    split.add_argument("--out-held", required=True, type=Path, help="manifest of the held-out speakers")
    split.set_defaults(run=run_split)

    add_synthesize(commands)
    add_transcribe(commands)
    add_align(commands)
    add_lm(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print as their own bytes, as ls does
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="asr: %(levelname)s: %(message)s"
    )
    try:
        with logging_redirect_tqdm():
            status = args.run(args)
    except UserError as error:
        print(f"asr: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130
    return status or 0
