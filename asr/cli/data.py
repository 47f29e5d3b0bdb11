"""`asr prepare`, `asr split`, `asr stats` and `asr synthesize`: the data commands.

The parsers are built from light modules only; each command imports what it runs (torch,
the audio stack) when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from asr.cli.arguments import (
    comma_names,
    comma_numbers,
    default_jobs,
    positive_int,
    progress,
    worker_count,
)
from asr.errors import UserError
from asr.outputs import OutputError, one_of, output_file, output_files, output_folder

if TYPE_CHECKING:
    from asr.data.prepare import PrepareConfig, PrepareReport


def prepare_config(args: argparse.Namespace) -> PrepareConfig:
    from asr.data.prepare import PrepareConfig
    from asr.text import TextConfig

    if args.no_spaces and args.normalizer != "unicode":
        raise UserError("--no-spaces: a setting of --normalizer unicode")
    text = TextConfig(args.normalizer, spaces=not args.no_spaces)
    return PrepareConfig(jobs=args.jobs, verify=args.verify, expand_numbers=args.expand_numbers, text=text)


def print_report(report: PrepareReport) -> None:
    """The summary line, then one line per kind of transcript text that normalisation loses."""
    print(report.summary())
    for note in report.notes:
        print(f"{report.manifest}: {note}")


def run_prepare_librispeech(args: argparse.Namespace) -> None:
    from asr.data.prepare import prepare_librispeech

    subsets = [s.strip() for s in args.subsets.split(",") if s.strip()]
    output_folder(args.out, "--out")
    for report in prepare_librispeech(args.root, subsets, args.out, prepare_config(args), track=progress):
        print_report(report)


def run_prepare_tsv(args: argparse.Namespace) -> None:
    from asr.data.prepare import prepare_tsv

    output_file(args.out, "--out", inputs=[args.file])
    print_report(prepare_tsv(args.file, args.out, prepare_config(args), track=progress))


def run_prepare_kaldi(args: argparse.Namespace) -> None:
    from asr.data.prepare import prepare_kaldi

    output_file(args.out, "--out", inputs=[args.dir / name for name in ("wav.scp", "text", "utt2spk", "segments")])
    print_report(prepare_kaldi(args.dir, args.out, prepare_config(args), track=progress))


def run_prepare_commonvoice(args: argparse.Namespace) -> None:
    from asr.data.prepare import prepare_commonvoice

    output_folder(args.out, "--out")
    config = prepare_config(args)
    for report in prepare_commonvoice(args.root, args.splits, args.out, config, track=progress, language=args.language):
        print_report(report)


def run_prepare_aishell(args: argparse.Namespace) -> None:
    from asr.data.prepare import prepare_aishell

    output_folder(args.out, "--out")
    if args.no_spaces is None:  # the corpus's default: no spaces where the unicode normaliser is kept
        args = argparse.Namespace(**{**vars(args), "no_spaces": args.normalizer == "unicode"})
    for report in prepare_aishell(args.root, args.splits, args.out, prepare_config(args), track=progress):
        print_report(report)


def add_prepare_options(parser: argparse.ArgumentParser) -> None:
    """--jobs, --verify, --expand-numbers, --normalizer and --no-spaces, shared by every `prepare` corpus."""
    parser.add_argument(
        "--jobs", type=worker_count, default=default_jobs(), help="audio files read at once (default: %(default)s)"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="decode every audio file once and skip those that fail (slower; a header read misses cut-off files)",
    )
    parser.add_argument(
        "--expand-numbers", action="store_true", help="write digits in transcripts as words (42 -> forty-two)"
    )
    parser.add_argument(
        "--normalizer",
        choices=("english", "unicode", "none"),
        default="english",
        help="the normaliser training will use (text.normalizer): what the notes count as lost and which "
        "transcripts are empty; the manifest keeps the text as it is (default: %(default)s)",
    )
    parser.add_argument(
        "--no-spaces",
        action="store_true",
        help="with --normalizer unicode: a script written without spaces between words (text.spaces: false)",
    )


def run_stats(args: argparse.Namespace) -> None:
    from asr.data.dataset import manifest_stats
    from asr.data.manifest import read_manifest
    from asr.frontend.features import FeatureConfig

    output_file(args.out, "--out", inputs=[args.manifest, *([args.config] if args.config is not None else [])])
    features = FeatureConfig()
    if args.config is not None:
        from asr.config import load_config
        from asr.training.config import TrainConfig

        features = load_config(TrainConfig, args.config).features
    utterances = read_manifest(args.manifest)
    if one_of(args.out, (u.audio for u in utterances)):
        raise OutputError(f"{args.out}: is audio that {args.manifest} lists; give --out another file")
    stats = manifest_stats(utterances, features, jobs=args.jobs, track=progress)
    stats.save(args.out)
    print(f"{args.out}: mean/std of {stats.frames} frames from {len(utterances)} utterances")


def run_split(args: argparse.Namespace) -> None:
    from asr.data.manifest import read_manifest, split_by_speaker, write_manifest

    output_files({"--out-kept": args.out_kept, "--out-held": args.out_held}, inputs=[args.manifest])
    kept, held = split_by_speaker(read_manifest(args.manifest), args.held_out, args.seed)
    write_manifest(args.out_kept, kept)
    write_manifest(args.out_held, held)
    for path, part in ((args.out_kept, kept), (args.out_held, held)):
        print(f"{path}: {len(part)} utterances, {len({u.speaker for u in part})} speakers")


def run_synthesize(args: argparse.Namespace) -> None:
    from asr.lm.corpus import transcripts
    from asr.synthesis.config import CorpusConfig, CorpusError
    from asr.synthesis.corpus import CheckConfig, check_corpus, synthesize_corpus
    from asr.synthesis.sentences import sources_in
    from asr.synthesis.voices import ENGINES, available_engines

    if not args.check_only:
        output_folder(args.out, "--out")
        engines = tuple(available_engines()) if args.engines == ("available",) else args.engines
        if engines is None:  # every engine speaks English; only espeak-ng the other languages
            engines = ENGINES if args.language == "en" else ("espeak",)
        config = CorpusConfig(
            train_utterances=args.train_utterances,
            dev_utterances=args.dev_utterances,
            test_utterances=args.test_utterances,
            chapter_utterances=args.chapter_utterances,
            engines=engines,
            unheard_engines=args.unheard_engines,
            texts=args.texts or sources_in(args.language),
            vocabulary=args.vocabulary,
            rates=args.rates,
            pitches=args.pitches,
            held_out_voice_fraction=args.held_out_voice_fraction,
            noise_prob=args.noise_prob,
            snr_db=args.snr,
            seed=args.seed,
            language=args.language,
        )
        exclude = frozenset(transcripts(args.exclude))
        report = synthesize_corpus(args.out, config, jobs=args.jobs, track=progress, exclude=exclude)
        print(f"{report.root}: synthesised {report.synthesized} utterances now")
        if args.exclude:
            print(
                f"left out {report.excluded} sentence{'' if report.excluded == 1 else 's'} of the texts that "
                f"the --exclude manifests hold (of their {len(exclude)} distinct transcripts)"
            )
        for subset in report.subsets:
            print(subset.summary())
    problems = check_corpus(args.out, CheckConfig(), jobs=args.jobs)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise CorpusError(f"{args.out}: the check found {len(problems)} broken files (listed above)")


def add_synthesize(commands: argparse._SubParsersAction) -> None:
    from asr.synthesis.config import CorpusConfig
    from asr.synthesis.languages import LANGUAGES
    from asr.synthesis.sentences import SOURCES
    from asr.synthesis.voices import ENGINES

    defaults = CorpusConfig()
    parser = commands.add_parser(
        "synthesize",
        help="build a speech corpus in the LibriSpeech layout with TTS voices",
        description="Synthesise OUT/{train,dev,test}/<speaker>/<chapter>/ with espeak-ng, flite and festival "
        "voices reading free English texts (disjoint in voices and sentences), then check every file. "
        "--language de, es or zh: espeak-ng's voices of that language reading Debian's fortunes in it. "
        "Re-running with the same settings resumes.",
    )
    parser.add_argument(
        "--language",
        choices=("en", *LANGUAGES),
        default="en",
        help="what the voices speak and the texts are written in (default: %(default)s)",
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
        help=f"comma-separated, from {','.join(ENGINES)}; or 'available' for the installed ones (default: all "
        "three for English, espeak for the other languages)",
    )
    parser.add_argument(
        "--unheard-engines",
        type=comma_names,
        default=(),
        help="leave out voices whose talker a voice of these engines shares (a held-out engine's corpus "
        "for a model trained on them)",
    )
    parser.add_argument(
        "--texts",
        type=comma_names,
        help=f"from {','.join(SOURCES)} (default: those in --language; English: {','.join(defaults.texts)})",
    )
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
    parser.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        type=Path,
        metavar="MANIFEST",
        help="manifests whose transcripts no utterance may read (the dev and test sets of a corpus trained on "
        "next to this one)",
    )
    parser.add_argument("--jobs", type=worker_count, default=default_jobs(), help="parallel chapters")
    parser.add_argument("--check-only", action="store_true", help="only check the files already under --out")
    parser.set_defaults(run=run_synthesize)


def add_data_commands(commands: argparse._SubParsersAction) -> None:
    """prepare (librispeech, tsv, kaldi, commonvoice, aishell), stats and split."""
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
    commonvoice = corpora.add_parser(
        "commonvoice",
        help="a Common Voice language folder (cv-corpus-*/<lang>/)",
        description="Write OUT/<split>.jsonl for each split of a Common Voice language folder (<split>.tsv and "
        "clips/*.mp3). The id is the clip's name without .mp3, the speaker its client_id; sentences are kept as "
        "they are written. The normaliser defaults to unicode.",
    )
    commonvoice.add_argument(
        "root", type=Path, help="the language folder, or a folder holding one (cv-corpus-*/<lang>/)"
    )
    commonvoice.add_argument("--out", required=True, type=Path, help="output folder")
    commonvoice.add_argument(
        "--splits", type=comma_names, default=("train", "dev", "test"), help="comma-separated (default: train,dev,test)"
    )
    commonvoice.add_argument("--language", help="the language folder's name (e.g. de), where ROOT holds several")
    add_prepare_options(commonvoice)
    commonvoice.set_defaults(run=run_prepare_commonvoice, normalizer="unicode")
    aishell = corpora.add_parser(
        "aishell",
        help="AISHELL-1 (data_aishell: transcript/ and wav/<split>/S####/)",
        description="Write OUT/<split>.jsonl for each split of AISHELL-1 (wav/*.tar.gz extracted). The speaker is "
        "the S#### folder; transcripts are kept as they are, spaces between words included. The normaliser "
        "defaults to unicode with --no-spaces.",
    )
    aishell.add_argument("root", type=Path, help="data_aishell, or the folder holding it")
    aishell.add_argument("--out", required=True, type=Path, help="output folder")
    aishell.add_argument(
        "--splits", type=comma_names, default=("train", "dev", "test"), help="comma-separated (default: train,dev,test)"
    )
    add_prepare_options(aishell)
    aishell.set_defaults(run=run_prepare_aishell, normalizer="unicode", no_spaces=None)

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
    stats.add_argument("--jobs", type=worker_count, default=2, help="audio decoding workers (default: %(default)s)")
    stats.set_defaults(run=run_stats)

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
