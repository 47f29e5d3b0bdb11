"""SpeechBrain's sequence-to-sequence ASR recipe, driven through the installed package
(SpeechBrain 1.1.2), on our manifests, for a wall-clock budget; then the same test sets as ours.

    ~/.cache/peers-venv/bin/python benchmarks/time_to_accuracy/speechbrain_las.py \\
        --manifests EXP/manifests --dev EXP/manifests/espeak/dev.jsonl,EXP/manifests/festival/dev.jsonl \\
        --out EXP/speechbrain-small --minutes 30 --tests flite_dev,test,flite \\
        [--settings librispeech|small] [--norm global|sentence] [--skip-training]

What it keeps of the LibriSpeech recipe (recipes/LibriSpeech/ASR/seq2seq, train_BPE_1000.yaml):
40 log-mel filterbanks (`Fbank`) with global mean/variance normalisation (`InputNormalization`;
`--norm sentence`: each utterance's own, the choice ours has in `features.utterance_norm`);
the CRDNN encoder (2 VGG blocks with frequency pooling, time pooling 4, bidirectional LSTMs, DNN
blocks, LeakyReLU); a GRU decoder with location attention (10 channels, kernel 100); CTC +
attention loss; label smoothing 0.1; the NewBob schedule on dev WER (factor 0.8, threshold
0.0025); batches of 8 utterances sorted by duration (ascending, no shuffling); gradient norm
clipped at 5 (Brain's default); beam search with an EOS threshold of 1.5, a maximum attention
shift of 240 frames and temperature 1.25; the checkpoint of the best dev WER for testing (ours,
in run.sh, exports its best checkpoint by dev WER too: `average_best=1`). Dev is what our trainer
validates on: `--dev-utterances` drawn in equal parts of the `--dev` manifests, each across its
speakers (`asr.training.data.dev_sets`).
`--settings` picks the optimiser, CTC share and dropout: `librispeech` is that recipe's
(Adadelta lr 1.0, CTC 0.5 for the first third of the epochs, dropout 0.15); `small` is
SpeechBrain's recipe for a corpus of this size, TIMIT's, scaled to the budget (SETTINGS).

What it scales, and why: sizes, to train within the budget on 2 CPU cores beside our model of
about the same size (recipe -> here): CNN channels 128, 256 -> 16, 32; LSTM 4 x 1024 -> 3 x 192;
DNN 2 x 512 -> 2 x 192; embedding 128 -> 48; decoder GRU 1024 -> 256, attention 1024 -> 128;
characters (our alphabet) instead of 1,000 BPE units and no LM; validation after each epoch
greedy, as ours (the recipe's beam of 80 on dev would take minutes of the budget each epoch);
the beam 80 -> 4 (the issue's) for the tests and for choosing the search on dev; no waveform
augmentation (the recipe's noise set is a download, and our demo's model trains on clean
speech for the same reason: a few epochs learn faster without). The epochs: the budget, not a
count: an epoch starts only if the longest one so far still fits.

Writes OUT/curve.jsonl (a line per epoch: minutes since the start, dev WER/CER, learning rate),
OUT/search.jsonl (the dev WER of each search tried), OUT/results.jsonl (a line per test set and
engine, scored with our scorer: the WER, CER and insertion rate definitions of our RESULTS.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import speechbrain as sb
import torch
from manifest_csv import write_csv
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CTCTextEncoder
from speechbrain.decoders import S2SRNNBeamSearcher, S2SRNNGreedySearcher
from speechbrain.decoders.scorer import CoverageScorer, CTCScorer, ScorerBuilder

from asr.data.manifest import read_manifest, write_manifest
from asr.scoring import group_scores, score
from asr.training.config import DataConfig
from asr.training.data import dev_sets

log = logging.getLogger("speechbrain_las")

BLANK, BOS, EOS = 0, 1, 2  # SpeechBrain's CTC scorer needs the three apart (the recipe's BPE shares index 0)


@dataclass(frozen=True)
class Settings:
    """What the two runs differ in: the optimiser, the CTC share and the dropout."""

    optimizer: str  # "adadelta" (rho 0.95, eps 1e-8) or "adam"
    lr: float
    ctc_weight: float
    ctc_epochs: int | None  # CTC joins the loss up to this epoch; None: every epoch
    dropout: float


SETTINGS = {
    # recipes/LibriSpeech/ASR/seq2seq: CTC for the first third of the epochs (5 of 15; 2 of the
    # 6 that fit in 30 minutes here)
    "librispeech": Settings("adadelta", 1.0, ctc_weight=0.5, ctc_epochs=2, dropout=0.15),
    # recipes/TIMIT/ASR/seq2seq, SpeechBrain's recipe for a corpus of this size (3,696 utterances):
    # Adam with NewBob and CTC 0.2 throughout; its lr 3e-4 for 50 epochs raised to 1e-3 for the 6
    # that fit, and no dropout, as our model has none: a few epochs do not overfit
    "small": Settings("adam", 1e-3, ctc_weight=0.2, ctc_epochs=None, dropout=0.0),
}


@dataclass(frozen=True)
class Search:
    """One beam search setting: SpeechBrain's scorers and their weights (no LM here)."""

    name: str
    ctc_weight: float = 0.0
    coverage: float = 0.0


SEARCHES = (
    Search("recipe's valid_search (no scorer)"),
    Search("+ coverage 1.5 (the recipe's test_search without its LM)", coverage=1.5),
    Search("+ CTC 0.4", ctc_weight=0.4),
    Search("+ CTC 0.4, coverage 1.5", ctc_weight=0.4, coverage=1.5),
)


def modules(vocabulary: int, dropout: float, norm: str) -> dict[str, torch.nn.Module]:
    """The recipe's modules, scaled (module docstring)."""
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.CRDNN import CRDNN
    from speechbrain.processing.features import InputNormalization

    encoder = CRDNN(
        input_shape=[None, None, 40], activation=torch.nn.LeakyReLU, dropout=dropout,
        cnn_blocks=2, cnn_channels=(16, 32), cnn_kernelsize=(3, 3), inter_layer_pooling_size=(2, 2),
        time_pooling=True, using_2d_pooling=False, time_pooling_size=4,
        rnn_class=sb.nnet.RNN.LSTM, rnn_layers=3, rnn_neurons=192, rnn_bidirectional=True, rnn_re_init=True,
        dnn_blocks=2, dnn_neurons=192, use_rnnp=False,
    )  # fmt: skip
    decoder = sb.nnet.RNN.AttentionalRNNDecoder(
        enc_dim=192, input_size=48, rnn_type="gru", attn_type="location", hidden_size=256, attn_dim=128,
        num_layers=1, scaling=1.0, channels=10, kernel_size=100, re_init=True, dropout=dropout,
    )  # fmt: skip
    return {
        "features": Fbank(sample_rate=16000, n_fft=400, n_mels=40),
        "normalize": InputNormalization(norm_type=norm),
        "enc": encoder,
        "emb": sb.nnet.embedding.Embedding(num_embeddings=vocabulary, embedding_dim=48),
        "dec": decoder,
        "ctc_lin": sb.nnet.linear.Linear(input_size=192, n_neurons=vocabulary),
        "seq_lin": sb.nnet.linear.Linear(input_size=256, n_neurons=vocabulary),
    }


def greedy(parts: dict[str, torch.nn.Module]) -> S2SRNNGreedySearcher:
    """The greedy search that validates after each epoch (the recipe's decoding bounds)."""
    return S2SRNNGreedySearcher(
        embedding=parts["emb"], decoder=parts["dec"], linear=parts["seq_lin"], bos_index=BOS, eos_index=EOS,
        min_decode_ratio=0.0, max_decode_ratio=1.0,
    )  # fmt: skip


def searcher(parts: dict[str, torch.nn.Module], search: Search, vocabulary: int) -> S2SRNNBeamSearcher:
    """The recipe's beam search (beam 4) with `search`'s scorers."""
    scorers, weights = [], {}
    if search.ctc_weight:
        scorers.append(CTCScorer(ctc_fc=parts["ctc_lin"], blank_index=BLANK, eos_index=EOS))
        weights["ctc"] = search.ctc_weight
    if search.coverage:
        scorers.append(CoverageScorer(vocab_size=vocabulary))
        weights["coverage"] = search.coverage
    return S2SRNNBeamSearcher(
        embedding=parts["emb"], decoder=parts["dec"], linear=parts["seq_lin"], bos_index=BOS,
        eos_index=EOS, min_decode_ratio=0.0, max_decode_ratio=1.0, beam_size=4, eos_threshold=1.5,
        using_max_attn_shift=True, max_attn_shift=240, temperature=1.25,
        scorer=ScorerBuilder(full_scorers=scorers, weights=weights) if scorers else None,
    )  # fmt: skip


class ASR(sb.Brain):
    """The recipe's training step and validation: CTC + attention while `epoch <= ctc_epochs`."""

    def _with_ctc(self) -> bool:
        last = self.hparams.settings.ctc_epochs
        return last is None or self.hparams.epoch_counter.current <= last

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        tokens_bos, _ = batch.tokens_bos
        feats = self.modules.normalize(self.modules.features(wavs), wav_lens)
        encoded = self.modules.enc(feats.detach())
        decoded, _ = self.modules.dec(self.modules.emb(tokens_bos), encoded, wav_lens)
        p_seq = torch.log_softmax(self.modules.seq_lin(decoded), dim=-1)
        if stage == sb.Stage.TRAIN:
            p_ctc = None
            if self._with_ctc():
                p_ctc = torch.log_softmax(self.modules.ctc_lin(encoded), dim=-1)
            return p_ctc, p_seq, wav_lens, None
        hyps, _, _, _ = self.hparams.search(encoded, wav_lens)
        return None, p_seq, wav_lens, hyps

    def compute_objectives(self, predictions, batch, stage):
        p_ctc, p_seq, wav_lens, hyps = predictions
        tokens_eos, tokens_eos_lens = batch.tokens_eos
        loss = sb.nnet.losses.nll_loss(p_seq, tokens_eos, length=tokens_eos_lens, label_smoothing=0.1)
        if p_ctc is not None:
            tokens, tokens_lens = batch.tokens
            ctc = sb.nnet.losses.ctc_loss(p_ctc, tokens, wav_lens, tokens_lens, blank_index=BLANK)
            weight = self.hparams.settings.ctc_weight
            loss = weight * ctc + (1 - weight) * loss
        if hyps is not None:
            self.hypotheses.update(zip(batch.id, (self.hparams.text_of(hyp) for hyp in hyps), strict=True))
            self.references.update(zip(batch.id, batch.wrd, strict=True))
        return loss

    def on_stage_start(self, stage, epoch=None):
        self.hypotheses, self.references = {}, {}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        if stage != sb.Stage.VALID:
            return
        ids = sorted(self.references)
        corpus, _ = score(ids, [self.references[i] for i in ids], [self.hypotheses[i] for i in ids])
        old_lr, new_lr = self.hparams.lr_annealing(corpus.wer)
        sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
        self.hparams.curve.record(epoch, old_lr, self.train_loss, stage_loss, corpus.wer, corpus.cer)
        self.checkpointer.save_and_keep_only(meta={"WER": corpus.wer}, min_keys=["WER"])
        if not self.hparams.curve.another_epoch_fits():
            self.hparams.epoch_counter.limit = epoch  # the budget ends the run, not an epoch count


def optimizer(params, settings: Settings) -> torch.optim.Optimizer:
    if settings.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=settings.lr, rho=0.95, eps=1e-8)
    return torch.optim.Adam(params, lr=settings.lr)


class Curve:
    """Dev WER against wall-clock minutes since training started (set-up included)."""

    def __init__(self, path: Path, budget_minutes: float, settings: str, fresh: bool = True):
        self.path, self.budget, self.settings = path, budget_minutes, settings
        self.start = time.time()
        self.last_epoch_start = self.start
        self.longest_epoch = 0.0
        if fresh:
            path.write_text("")

    def minutes(self) -> float:
        return (time.time() - self.start) / 60

    def record(self, epoch: int, lr: float, train_loss: float, dev_loss: float, wer: float, cer: float) -> None:
        now = time.time()
        self.longest_epoch = max(self.longest_epoch, (now - self.last_epoch_start) / 60)
        self.last_epoch_start = now
        line = {"toolkit": "speechbrain", "settings": self.settings, "epoch": epoch,
                "minutes": round(self.minutes(), 3), "lr": lr,
                "train_loss": round(train_loss, 4), "dev_loss": round(dev_loss, 4), "dev_wer": round(wer, 2),
                "dev_cer": round(cer, 2)}  # fmt: skip
        with self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        log.info("epoch %d at %.1f min: dev WER %.2f%%, CER %.2f%%, lr %.3g", epoch, self.minutes(), wer, cer, lr)

    def another_epoch_fits(self) -> bool:
        return self.minutes() + self.longest_epoch <= self.budget


def datasets(manifests: Path, out: Path, tests: list[str], dev: DataConfig) -> tuple[dict, CTCTextEncoder]:
    """Train/dev/test DynamicItemDatasets from our manifests (dev: the utterances our trainer
    validates on with `dev`, written to OUT/dev.jsonl), with the recipe's audio and text pipelines
    (characters), and the label encoder built on the training transcripts."""
    write_manifest(out / "dev.jsonl", [u for drawn in dev_sets(dev, seed=0).values() for u in drawn])
    sources = {"train": manifests / "train.jsonl", "dev": out / "dev.jsonl"}
    sources |= {name: manifests / f"{name}.jsonl" for name in tests}
    data = {}
    for name, manifest in sources.items():
        write_csv(manifest, out / f"{name}.csv")
        data[name] = DynamicItemDataset.from_csv(csv_path=str(out / f"{name}.csv"))
    # the recipe sorts training by duration, ascending; our trainer drops utterances over 12 s
    data["train"] = data["train"].filtered_sorted(sort_key="duration", key_max_value={"duration": 12.0})
    for name in ("dev", *tests):
        data[name] = data[name].filtered_sorted(sort_key="duration")
    encoder = CTCTextEncoder()
    encoder.insert_blank(index=BLANK)
    encoder.insert_bos_eos(bos_label="<bos>", eos_label="<eos>", bos_index=BOS, eos_index=EOS)
    with open(out / "train.csv", newline="") as lines:
        encoder.update_from_iterable((row["wrd"] for row in csv.DictReader(lines)), sequence_input=True)

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio(wav):
        return sb.dataio.dataio.read_audio(wav)

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("wrd", "tokens_bos", "tokens_eos", "tokens")
    def text(wrd):
        yield wrd
        ids = encoder.encode_sequence(list(wrd))
        yield torch.LongTensor([BOS] + ids)
        yield torch.LongTensor(ids + [EOS])
        yield torch.LongTensor(ids)

    every = list(data.values())
    sb.dataio.dataset.add_dynamic_item(every, audio)
    sb.dataio.dataset.add_dynamic_item(every, text)
    sb.dataio.dataset.set_output_keys(every, ["id", "sig", "wrd", "tokens_bos", "tokens_eos", "tokens"])
    return data, encoder


def decode(brain: ASR, data: DynamicItemDataset, search: S2SRNNBeamSearcher) -> dict[str, tuple[str, str]]:
    """{id: (reference, hypothesis)} of `data` with `search`, batches of 8."""
    brain.hparams.search = search
    brain.evaluate(data, min_key="WER", test_loader_kwargs={"batch_size": 8})  # the best dev checkpoint
    return {i: (brain.references[i], brain.hypotheses[i]) for i in brain.references}


def scored(pairs: dict[str, tuple[str, str]]):
    ids = sorted(pairs)
    return score(ids, [pairs[i][0] for i in ids], [pairs[i][1] for i in ids])


def choose_search(brain: ASR, dev: DynamicItemDataset, parts: dict, vocabulary: int, out: Path) -> Search:
    """Decode dev with each of SEARCHES (the best dev checkpoint); write their WERs to `out` and
    return the best."""
    tried = []
    for search in SEARCHES:
        corpus, _ = scored(decode(brain, dev, searcher(parts, search, vocabulary)))
        tried.append({"search": search.name, "ctc_weight": search.ctc_weight, "coverage": search.coverage,
                      "dev_wer": corpus.wer})  # fmt: skip
    out.write_text("".join(json.dumps(line) + "\n" for line in tried))
    return min(zip(tried, SEARCHES, strict=True), key=lambda pair: pair[0]["dev_wer"])[1]


def test_rows(brain: ASR, data: DynamicItemDataset, name: str, search, group_of: dict[str, str]) -> list[dict]:
    """The test set's scores, then each group's (`group_of`: utterance id -> group)."""
    corpus, utterances = scored(decode(brain, data, search))
    sets = {name: corpus} | {f"{name}/{group}": value for group, value in group_scores(utterances, group_of).items()}
    return [{"test": label, "insertion_rate": round(value.insertion_rate, 2), **value.to_dict()}
            for label, value in sets.items()]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifests", type=Path, required=True, help="a recipe's EXP/manifests")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=30.0, help="the wall-clock training budget")
    parser.add_argument(
        "--settings",
        choices=sorted(SETTINGS),
        default="librispeech",
        help="the optimiser, CTC and dropout of which recipe",
    )
    parser.add_argument("--skip-training", action="store_true", help="only decode, with OUT's best checkpoint")
    parser.add_argument(
        "--norm", choices=("global", "sentence"), default="global", help="InputNormalization's norm_type"
    )
    parser.add_argument("--tests", default="test,flite", help="manifests to decode after training")
    parser.add_argument("--groups", type=Path, help="speaker -> group lines (engines.txt): a row per group")
    parser.add_argument("--dev", required=True, help="comma-separated dev manifests, as our config's data.dev")
    parser.add_argument("--dev-utterances", type=int, default=100, help="as our config's data.dev_utterances")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    tests = args.tests.split(",")
    label = args.settings if args.norm == "global" else f"{args.settings}, {args.norm} norm"
    curve = Curve(args.out / "curve.jsonl", args.minutes, label, fresh=not args.skip_training)
    torch.manual_seed(2602)  # the recipe's seed
    dev = DataConfig(dev=tuple(args.dev.split(",")), dev_utterances=args.dev_utterances)
    data, encoder = datasets(args.manifests, args.out, tests, dev)
    vocabulary = len(encoder)
    settings = SETTINGS[args.settings]
    parts = modules(vocabulary, settings.dropout, args.norm)
    counter = sb.utils.epoch_loop.EpochCounter(limit=1000)
    annealing = sb.nnet.schedulers.NewBobScheduler(
        initial_value=settings.lr, improvement_threshold=0.0025, annealing_factor=0.8, patient=0
    )
    hparams = {
        "epoch_counter": counter, "settings": settings, "lr_annealing": annealing, "curve": curve,
        "search": greedy(parts),
        "text_of": lambda hyp: "".join(encoder.decode_ndim(hyp)),
    }  # fmt: skip
    model = torch.nn.ModuleList([parts[key] for key in ("enc", "emb", "dec", "ctc_lin", "seq_lin")])
    checkpointer = sb.utils.checkpoints.Checkpointer(
        args.out / "save",
        recoverables={"model": model, "normalizer": parts["normalize"], "counter": counter, "scheduler": annealing},
    )  # fmt: skip
    brain = ASR(
        modules=parts, hparams=hparams, checkpointer=checkpointer, run_opts={"device": "cpu"},
        opt_class=lambda params: optimizer(params, settings),
    )  # fmt: skip
    if not args.skip_training:
        brain.fit(counter, data["train"], data["dev"], progressbar=False,
                  train_loader_kwargs={"batch_size": 8, "shuffle": False},
                  valid_loader_kwargs={"batch_size": 8})  # fmt: skip
        log.info("training ended at %.1f min", curve.minutes())
    best = choose_search(brain, data["dev"], parts, vocabulary, args.out / "search.jsonl")
    groups = dict(line.split() for line in args.groups.read_text().splitlines()) if args.groups else {}
    rows = []
    for name in tests:
        speakers = read_manifest(args.manifests / f"{name}.jsonl")
        group_of = {u.id: groups[u.speaker] for u in speakers if u.speaker in groups}
        rows += test_rows(brain, data[name], name, searcher(parts, best, vocabulary), group_of)
    search = {"settings": args.settings, "norm": args.norm, "search": best.name, "beam": 4,
              "ctc_weight": best.ctc_weight, "coverage": best.coverage}  # fmt: skip
    rows = [{"toolkit": "speechbrain", **search, **row} for row in rows]
    (args.out / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    for row in rows:
        log.info(
            "%s: WER %.2f%%, CER %.2f%%, insertions %.2f%%", row["test"], row["wer"], row["cer"], row["insertion_rate"]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
