"""`asr train`, `asr average`, `asr evaluate` and `asr lm`: the training and scoring commands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asr.cli.arguments import (
    add_device_option,
    add_model_options,
    comma_names,
    longest_piece,
    non_negative_int,
    positive_int,
    progress,
    search_overrides,
    worker_count_or_none,
)
from asr.errors import UserError
from asr.outputs import OutputError, one_of, output_file, output_folder
from asr.reading import read_small_text


def experiment_folder(exp_dir: Path) -> None:
    """An experiment folder to train in: writable, and its model directory (EXP_DIR/model, written at
    the end) replaceable."""
    from asr.checkpoint import check_replaceable

    output_folder(exp_dir, "--out")
    check_replaceable(exp_dir / "model")


def run_train(args: argparse.Namespace) -> None:
    from asr.config import load_config
    from asr.training.config import TrainConfig
    from asr.training.distributed import launched_as_main
    from asr.training.loop import train

    config = load_config(TrainConfig, args.config, args.set)
    experiment_folder(args.out)
    logging.getLogger("asr.training").setLevel(logging.INFO)  # validation results, resume, export
    model_dir = train(config, args.out, device=args.device, track=progress, replace=args.replace)
    if launched_as_main():  # every torchrun process returns the path; one line says it
        print(f"{model_dir}: model directory")


def run_average(args: argparse.Namespace) -> None:
    from asr.checkpoint import check_replaceable
    from asr.config import load_config
    from asr.training.checkpoints import export_average
    from asr.training.config import TrainConfig

    config = load_config(TrainConfig, args.exp_dir / "config.yaml")
    out = args.out or args.exp_dir / "model"
    output_folder(out, "--out")
    check_replaceable(out)
    count = export_average(args.exp_dir, config, args.best, out)
    print(f"{out}: average of {count} checkpoints")


def run_evaluate(args: argparse.Namespace) -> None:
    from asr.checkpoint import load_model_dir
    from asr.device import choose_device
    from asr.evaluation import evaluate
    from asr.lm import load_lm
    from asr.recognize import int8_model, search_settings

    groups = read_groups(args.groups) if args.groups is not None else None
    output_folder(args.out, "--out")
    loaded = load_model_dir(args.model, choose_device(args.device))
    if args.int8:
        loaded = int8_model(loaded)
    lm = load_lm(args.lm, loaded.device, loaded.vocab) if args.lm is not None else None
    search = search_settings(loaded.decoding, loaded.model, lm, **search_overrides(args))
    corpus = evaluate(
        loaded, args.manifest, args.out, search, args.batch_size, args.jobs, progress, groups, lm, args.max_seconds
    )
    print(f"{args.manifest}: {corpus.summary()}")


def read_groups(path: Path) -> dict[str, str]:
    """A `speaker group` table (one pair a line, as Kaldi's spk2gender) -> speaker -> group."""
    try:
        lines = read_small_text(path, "speaker table").splitlines()
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
        speaker, group = fields
        if groups.get(speaker, group) != group:
            first = groups[speaker]
            raise UserError(f"{path}:{number}: speaker {speaker} is in group {first!r} already, not {group!r}")
        groups[speaker] = group
    return groups


def run_lm_train(args: argparse.Namespace) -> None:
    import dataclasses

    from asr.atomic import exclusive_folder
    from asr.config import load_config
    from asr.device import choose_device
    from asr.lm.training import LMTrainConfig, LMTrainer

    config = load_config(LMTrainConfig, args.config, args.set)
    dev = str(args.dev_text) if args.dev_text is not None else config.data.dev
    data = dataclasses.replace(config.data, train=tuple(map(str, args.text)), dev=dev)
    config = dataclasses.replace(config, data=data)
    experiment_folder(args.out)
    logging.getLogger("asr.lm.training").setLevel(logging.INFO)  # validation results, resume, export
    with exclusive_folder(args.out, "asr lm train"):  # as `train_lm` holds it; the text report comes first
        trainer = LMTrainer(config, args.out, choose_device(args.device), track=progress)
        print(trainer.text_report.summary())
        print(f"{trainer.run()}: LM directory")


def run_lm_evaluate(args: argparse.Namespace) -> None:
    from asr.device import choose_device
    from asr.lm import load_lm
    from asr.lm.corpus import read_text
    from asr.lm.evaluation import evaluate_lm

    model = load_lm(args.model, choose_device(args.device))
    corpus, report = read_text(args.text)
    print(report.summary())
    print(f"{', '.join(map(str, args.text))}: {evaluate_lm(model, corpus, args.max_tokens, progress).summary()}")


def run_lm_text(args: argparse.Namespace) -> None:
    from asr.data.manifest import read_manifest
    from asr.lm.corpus import lm_text, transcripts, write_lm_text

    output_file(args.out, "--out", inputs=[*(args.transcripts or ()), *args.exclude])
    manifests = [*(args.transcripts or ()), *args.exclude]
    if one_of(args.out, (u.audio for manifest in manifests for u in read_manifest(manifest))):
        raise OutputError(
            f"{args.out}: is audio that {' or '.join(map(str, manifests))} lists; give --out another file"
        )
    if args.transcripts:
        count = write_lm_text(transcripts(args.transcripts), args.out)
        print(f"{args.out}: {count:,} transcripts of {', '.join(map(str, args.transcripts))}")
        return
    text = lm_text(args.sources, args.exclude, args.vocabulary)
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
    add_device_option(train)
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
    add_device_option(evaluate)
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
    text.add_argument(
        "--vocabulary",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="only sentences of the N most frequent words, as `asr synthesize --vocabulary N` keeps (default: all)",
    )
    text.add_argument("--out", required=True, type=Path, help="text file to write")
    text.set_defaults(run=run_lm_text)


def add_training_commands(commands: argparse._SubParsersAction) -> None:
    """train, average and evaluate."""
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
    add_device_option(train)
    train.add_argument(
        "--replace",
        action="store_true",
        help="train afresh in an EXP_DIR that holds another run (its checkpoints, best/, model/ and logs are "
        "removed); without it such a folder is refused unless the run can resume",
    )
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
    add_model_options(evaluate)
    evaluate.add_argument("--manifest", required=True, type=Path, help="manifest to evaluate (.jsonl)")
    evaluate.add_argument("--out", required=True, type=Path, help="output folder")
    evaluate.add_argument(
        "--batch-size", type=positive_int, default=16, help="utterances per batch (default: %(default)s)"
    )
    evaluate.add_argument(
        "--max-seconds",
        type=longest_piece,
        metavar="S",
        help="cut utterances longer than S seconds at pauses and decode the pieces (default: the longest utterance "
        "the model was trained on; inf: decode every utterance whole)",
    )
    evaluate.add_argument(
        "--jobs", type=worker_count_or_none, default=2, help="audio decoding workers, 0: none (default: %(default)s)"
    )
    evaluate.add_argument(
        "--groups", type=Path, help="a 'speaker group' table: adds each group's WER to summary.json and report.txt"
    )
    evaluate.set_defaults(run=run_evaluate)
