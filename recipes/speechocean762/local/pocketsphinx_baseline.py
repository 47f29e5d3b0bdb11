"""A reference point on speechocean762's test set: CMU PocketSphinx with its default English
model (acoustic model, dictionary and 3-gram LM that ship in the `pocketsphinx` wheel), one
decoder per file, scored with this project's scoring (the same normalisation as ours).

PocketSphinx is not a dependency of the project; run it from its own environment:

    python3 -m venv /tmp/ps && /tmp/ps/bin/pip install pocketsphinx==5.1.1 soundfile jiwer
    PYTHONPATH=. /tmp/ps/bin/python recipes/speechocean762/local/pocketsphinx_baseline.py \\
        --manifest exp/speechocean762/manifests/test.jsonl --out exp/speechocean762/pocketsphinx [--jobs 2]

Writes OUT/hyps.jsonl and OUT/summary.json (corpus WER, CER and the error counts, and the
decoding time), and prints the summary line. Each transcript is appended to OUT/decoded.jsonl
as soon as it is made, so an interrupted run started again decodes only what is left (the
decoding time then adds up the runs).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile


def decode(path: str) -> str:
    """The default PocketSphinx decoder on one file (read, made 16 kHz mono 16-bit, decoded whole)."""
    from pocketsphinx import Config, Decoder

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != 16000:
        raise SystemExit(f"{path}: {rate} Hz; PocketSphinx's default model wants 16 kHz")
    pcm = (np.clip(samples.mean(axis=1), -1, 1) * 32767).astype(np.int16).tobytes()
    config = Config(loglevel="FATAL")
    decoder = Decoder(config)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def _decoded(path: Path) -> tuple[dict[str, str], float]:
    """The transcripts an earlier run appended to `path` (id -> text) and the decoding seconds they took;
    a last line cut short by the interruption is ignored."""
    decoded: dict[str, str] = {}
    seconds = 0.0
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            decoded[row["id"]] = row["hyp"]
            seconds = row["seconds"]
    return decoded, seconds


def main() -> None:
    from asr.scoring import score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    utterances = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    decoded_path = args.out / "decoded.jsonl"
    decoded, seconds = _decoded(decoded_path)
    todo = [u for u in utterances if u["id"] not in decoded]
    with ProcessPoolExecutor(args.jobs) as pool, decoded_path.open("a") as sink:
        started, before = time.perf_counter(), seconds
        for u, hyp in zip(todo, pool.map(decode, [u["audio"] for u in todo], chunksize=4), strict=True):
            seconds = before + time.perf_counter() - started
            sink.write(json.dumps({"id": u["id"], "hyp": hyp, "seconds": round(seconds, 2)}) + "\n")
            sink.flush()
            decoded[u["id"]] = hyp
    hyps = [decoded[u["id"]] for u in utterances]
    corpus, per_utterance = score([u["id"] for u in utterances], [u["text"] for u in utterances], hyps)
    with (args.out / "hyps.jsonl").open("w") as handle:
        for u in per_utterance:
            handle.write(json.dumps({"id": u.id, "ref": u.ref, "hyp": u.hyp, "errors": u.errors}) + "\n")
    audio = sum(u["duration"] for u in utterances)
    summary = corpus.to_dict() | {"decoding_seconds": round(seconds, 1), "jobs": args.jobs, "audio_seconds": audio}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    timing = f"{seconds:.0f} s with {args.jobs} jobs"
    print(f"{args.manifest}: PocketSphinx 5.1.1 default model: {corpus.summary()}; {timing}")


if __name__ == "__main__":
    main()
