"""The project's LAS as two systems of the peer benchmark, ../shared/bench/peers_las.py.

    ~/.cache/peers-venv/bin/python ../shared/bench/peers_las.py \\
        --systems benchmarks/peer_adapter.py:system_att,benchmarks/peer_adapter.py:system_joint

`system_att` trains on the attention loss alone and decodes without CTC; `system_joint`
trains with CTC weight 0.3 and beam-searches with CTC weight 0.3 (greedy search without
CTC, as the peers'). Both build the harness's common model (see its module docstring): 4 BiLSTM
layers of `--units` (320) per direction halving the frame rate before layers 1 and 2
(4x), location attention of 320 with 10 channels and a 201-wide kernel, one 320-unit
speller LSTM, 32 outputs; no dropout, no label smoothing.

`system_lean_att` and `system_lean_joint` are the same with the project's two speed options:
a projection of `--units` with tanh between listener layers (`listener.projection`, as the
peers' encoders have: ESPnet's blstmp, the harness's SpeechBrain pyramid) and a speller
without input feeding (`speller.input_feeding: false`, which the peers' decoders do not offer).
`system_windowed_att` and `system_windowed_joint` are the lean systems searching with an
attention window of `WINDOW` listener frames (`SearchConfig.attention_window`, an
approximation the peers' searches do not make).

Token ids: the project's default vocabulary has 32 tokens as the harness's output layer
(blank, pad, sos, eos, space, apostrophe, A-Z); the harness's characters 1..29 become its
characters 4..31 (c -> 4 + (c - 1) mod 28).

Decoding length: the harness wants EOS never chosen and the search stopped at
int(0.5 x listener frames) tokens. `SearchConfig(min_length_ratio=0.5,
max_length_ratio=0.5)` says exactly that: EOS is blocked below the minimum and forced
at the maximum, per utterance, with the model's weights left as they are (the searches'
default cap of 25 characters a second of audio lies above the 12.5 this makes). Batched, an
utterance leaves the batch at its own length, whereas the peers decode every utterance
of a batch to the longest one's; `hyp_tokens_mean` shows the difference.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import version

import peers_las as H  # the harness: importable as the folder of the script that runs
import torch

from asr.decoding.beam import beam_search
from asr.decoding.config import SearchConfig
from asr.decoding.greedy import greedy_search
from asr.model import LAS, AttentionConfig, LASConfig, ListenerConfig, SpellerConfig
from asr.text import SPECIALS, Vocabulary

VOCAB = Vocabulary.default()
assert len(VOCAB) == H.VOCAB, "the harness's output layer and the project's vocabulary must have one size"
CTC_WEIGHT = 0.3
WINDOW = 32


def model_config(units: int, ctc_weight: float, lean: bool = False) -> LASConfig:
    """The harness's common model with `units` per layer; `ctc_weight` 0 leaves out the CTC head;
    `lean`: with a listener projection of `units` and a speller without input feeding."""
    # H.SUBSAMPLE lists a factor for the input and after each layer: layer i halves its input when entry i is 2
    reduce = tuple(i for i, factor in enumerate(H.SUBSAMPLE[: H.ELAYERS]) if factor == 2)
    return LASConfig(
        listener=ListenerConfig(
            input_dim=H.FEAT_DIM,
            layers=H.ELAYERS,
            units=units,
            reduce=reduce,
            dropout=0.0,
            projection=units if lean else 0,
        ),
        attention=AttentionConfig(
            kind="location", dim=units, location_channels=H.ACONV_CHANS, location_kernel=2 * H.ACONV_FILTS + 1
        ),
        speller=SpellerConfig(embedding_dim=units, units=units, layers=H.DLAYERS, dropout=0.0, input_feeding=not lean),
        vocab_size=H.VOCAB,
        ctc_weight=ctc_weight,
        label_smoothing=0.0,
    )


def project_targets(batch: H.Batch) -> torch.Tensor:
    """The harness's character targets as the project's ids (B, L), padded with the pad id."""
    characters = H.VOCAB - len(SPECIALS)
    padded = torch.full((batch.size, int(batch.target_lens.max())), VOCAB.pad_id, dtype=torch.long)
    for i, y in enumerate(batch.targets):
        padded[i, : len(y)] = len(SPECIALS) + (y - H.CHAR_LO) % characters
    return padded


def search_name(beam: int) -> str:
    return "asr.decoding.greedy_search" if beam == 1 else f"asr.decoding.beam_search beam={beam}"


def searcher(
    model: LAS, features: torch.Tensor, lengths: torch.Tensor, beam: int, ctc_weight: float, window: int = 0
) -> Callable[[], list[list[int]]]:
    """Decodes (B, T, 80), (B,) with fixed lengths: greedy for beam 1; token ids per utterance."""
    config = SearchConfig(
        beam=beam,
        min_length_ratio=H.MAXLENRATIO,
        max_length_ratio=H.MAXLENRATIO,
        ctc_weight=ctc_weight,
        attention_window=window,
    )
    search = greedy_search if beam == 1 else beam_search
    return lambda: [list(h.tokens) for h in search(model, features, lengths, VOCAB, config)]


def _system(
    batch: H.Batch, cfg: argparse.Namespace, ctc_weight: float, lean: bool = False, window: int = 0
) -> H.Runner:
    model = LAS(model_config(cfg.units, ctc_weight, lean))
    targets = project_targets(batch)

    def train_step() -> float:
        model.zero_grad(set_to_none=True)
        loss = model(batch.feats, batch.feat_lens, targets, batch.target_lens).total
        loss.backward()
        return float(loss.detach())

    def encode() -> None:
        with torch.no_grad():
            model.encode(batch.feats, batch.feat_lens)

    def batched(beam: int, weight: float) -> H.Decoder:
        run = searcher(model, batch.feats, batch.feat_lens, beam, weight, window)
        info = {"api": search_name(beam), "ctc_weight": weight, "attention_window": window}
        return H.Decoder(run, batched=True, info=info)

    def per_utterance(beam: int, weight: float) -> H.Decoder:
        runs = [
            searcher(model, batch.utt(i)[None], batch.feat_lens[i : i + 1], beam, weight, window)
            for i in range(batch.size)
        ]
        info = {"api": search_name(beam) + ", batch of 1 in a loop", "ctc_weight": weight}
        return H.Decoder(lambda: [tokens for run in runs for tokens in run()], batched=False, info=info)

    decoders = {
        "encode": H.Decoder(encode, batched=True),
        "greedy_per_utt": per_utterance(1, 0.0),
        "greedy_batched": batched(1, 0.0),
        "beam10_batched": batched(10, ctc_weight),
        "beam10_per_utt": per_utterance(10, ctc_weight),
    }
    info = {
        "mtlalpha": ctc_weight,
        "version": version("las-asr"),
        "encoder": f"pyramid BiLSTM, padded, frame pairs concatenated before layers {model.config.listener.reduce}"
        + (f", projection {model.config.listener.projection} between layers" if lean else ""),
        "decoder": "input feeding" if model.config.speller.input_feeding else "no input feeding",
    }
    return H.Runner(model, train_step, decoders, prepare_decode=model.eval, info=info)


def system_att(batch: H.Batch, cfg: argparse.Namespace) -> H.Runner:
    return _system(batch, cfg, ctc_weight=0.0)


def system_joint(batch: H.Batch, cfg: argparse.Namespace) -> H.Runner:
    return _system(batch, cfg, ctc_weight=CTC_WEIGHT)


def system_lean_att(batch: H.Batch, cfg: argparse.Namespace) -> H.Runner:
    return _system(batch, cfg, ctc_weight=0.0, lean=True)


def system_lean_joint(batch: H.Batch, cfg: argparse.Namespace) -> H.Runner:
    return _system(batch, cfg, ctc_weight=CTC_WEIGHT, lean=True)


def system_windowed_att(batch: H.Batch, cfg: argparse.Namespace) -> H.Runner:
    return _system(batch, cfg, ctc_weight=0.0, lean=True, window=WINDOW)


def system_windowed_joint(batch: H.Batch, cfg: argparse.Namespace) -> H.Runner:
    return _system(batch, cfg, ctc_weight=CTC_WEIGHT, lean=True, window=WINDOW)
