"""How many words a model leaves out of a recording of two or three sentences with pauses between.

    .venv/bin/python benchmarks/joined_sentences.py --model EXP/model --manifest M.jsonl \\
        [--recordings 40] [--pauses 0.3,0.6,1.0,2.0] [--sentences 2,3] [--settings whole,cut] [--seed 0]

A model trained on single sentences tends to end its spelling at the first sentence's end: the
attention decoder says <eos> at the pause, and the rest of the recording is never read. This
joins, seeded, `--recordings` recordings for each pause length and sentence count from the
utterances of `--manifest` (one talker's sentences, or several talkers'), with that many seconds
of quiet noise (-70 dBFS) between the sentences, each recording shorter than the longest
utterance the model was trained on (so it is not cut for length). Each is transcribed under each
of `--settings`:

- `whole`: the recording decoded in one (the behaviour before sentence pauses were cut);
- `cut`: `asr transcribe`'s default, cut at pauses of `SegmenterConfig.sentence_pause_seconds`;
- `whole+ctcW` / `cut+ctcW`: the same with joint CTC scoring of weight W (a model with a CTC head).

One JSON line per setting and pause: the WER, the deletion rate (words of the references left
out, per hundred) and how many recordings lost at least a whole sentence's worth of words. Choose
a setting on a dev manifest; report the test manifest once.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
from cli_startup import cpu_name  # benchmarks/, this script's folder

import asr
from asr.data.manifest import Utterance, read_manifest
from asr.frontend.audio import SAMPLE_RATE
from asr.scoring import score
from asr.text import normalize

NOISE_RMS = 10 ** (-70 / 20)


def joined(utterances: list[Utterance], count: int, sentences: int, pause: float, longest: float, seed: int):
    """`count` recordings of `sentences` utterances each, `pause` seconds apart, no longer than
    `longest` seconds: (waveform, reference text, sentence word counts) each."""
    rng = np.random.default_rng(seed)
    made = []
    tries = 0
    while len(made) < count and tries < 100 * count:
        tries += 1
        chosen = [utterances[i] for i in rng.choice(len(utterances), sentences, replace=False)]
        if sum(u.duration for u in chosen) + pause * (sentences - 1) > longest:
            continue
        parts = []
        for i, utterance in enumerate(chosen):
            if i:
                parts.append(rng.normal(0, NOISE_RMS, round(pause * SAMPLE_RATE)).astype(np.float32))
            parts.append(utterance.load().numpy())
        text = " ".join(normalize(u.text) for u in chosen)
        made.append((np.concatenate(parts), text, [len(normalize(u.text).split()) for u in chosen]))
    return made


def settings(names: list[str]) -> dict[str, dict]:
    """Setting name -> `Recognizer.config` options."""
    options = {}
    for name in names:
        cut, _, ctc = name.partition("+ctc")
        option: dict = {"sentence_pause": math.inf} if cut == "whole" else {}
        if ctc:
            option["ctc_weight"] = float(ctc)
        options[name] = option
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--recordings", type=int, default=40, help="per pause length and sentence count")
    parser.add_argument("--pauses", default="0.3,0.6,1.0,2.0")
    parser.add_argument("--sentences", default="2,3")
    parser.add_argument("--settings", default="whole,cut")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = asr.load_model(args.model, device="cpu")
    utterances = [u for u in read_manifest(args.manifest) if normalize(u.text)]
    longest = model.max_seconds
    with tempfile.TemporaryDirectory() as folder:
        cases = []  # (pause, sentences, path, reference, words per sentence)
        for pause in map(float, args.pauses.split(",")):
            for count in map(int, args.sentences.split(",")):
                made = joined(utterances, args.recordings, count, pause, longest, args.seed + count)
                for i, (waveform, text, words) in enumerate(made):
                    path = Path(folder) / f"{pause}-{count}-{i}.flac"
                    soundfile.write(path, waveform, SAMPLE_RATE)
                    cases.append((pause, count, path, text, words))
        for name, options in settings(args.settings.split(",")).items():
            started = time.perf_counter()
            results = model.transcribe_batch([path for _, _, path, _, _ in cases], **options)
            seconds = time.perf_counter() - started
            for pause in sorted({case[0] for case in cases}):
                chosen = [(case, result) for case, result in zip(cases, results, strict=True) if case[0] == pause]
                ids = [str(case[2].name) for case, _ in chosen]
                corpus, each = score(ids, [case[3] for case, _ in chosen], [r.text for _, r in chosen])
                lost = sum(u.deletions >= min(case[4]) for (case, _), u in zip(chosen, each, strict=True))
                print(json.dumps({
                    "benchmark": "joined_sentences", "model": str(args.model), "manifest": str(args.manifest),
                    "setting": name, "pause_seconds": pause, "recordings": len(chosen),
                    "sentences": args.sentences, "wer": round(corpus.wer, 2), "cer": round(corpus.cer, 2),
                    "deletion_rate": round(100 * corpus.deletions / corpus.words, 2),
                    "insertion_rate": round(corpus.insertion_rate, 2),
                    "lost_a_sentence": lost, "seconds_all_pauses": round(seconds, 1),
                    "cpu": cpu_name(), "avx512": "avx512f" in Path("/proc/cpuinfo").read_text(),
                }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
