"""How fast a model decodes on the main thread, on a second thread after the main one ran PyTorch,
and on a thread that is the only one to run PyTorch (why `asr serve` decodes on a thread of its own).

    .venv/bin/python benchmarks/torch_threads.py MODEL_DIR AUDIO_DIR [--seconds 5] [--batches 3]

Each case runs in a fresh process: load the model, decode one batch of 8 recordings of AUDIO_DIR
that last --seconds (within 0.5 s) to warm up, then time --batches batches of 8 (beam and search:
the model's; word times on). Prints one JSON line a case.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

CASES = ("main", "second_thread", "only_thread")


def recordings(folder: Path, seconds: float) -> list[Path]:
    import soundfile

    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.suffix in (".flac", ".wav") and abs(soundfile.info(str(path)).duration - seconds) <= 0.5
    ]


def decode_batches(model_dir: Path, files: list[Path], batches: int) -> dict:
    """Load the model and time `batches` batches of 8 of `files` (after one to warm up)."""
    import torch

    import asr

    model = asr.load_model(model_dir, device="cpu")
    config = model.config(8, word_timestamps=True)
    list(model.transcribe_all(files[:8], config))
    started = time.perf_counter()
    for index in range(batches):
        list(model.transcribe_all(files[8 * index : 8 * index + 8], config))
    return {"seconds": round(time.perf_counter() - started, 3), "torch_threads": torch.get_num_threads()}


def run_case(case: str, model_dir: Path, files: list[Path], batches: int) -> dict:
    """One case in this process: where the model is loaded and where it decodes."""
    if case == "main":
        return decode_batches(model_dir, files, batches)
    if case == "second_thread":
        decode_batches(model_dir, files[:8], 0)  # the main thread runs PyTorch first
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(decode_batches(model_dir, files, batches)))
    thread.start()
    thread.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("audio_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--case", choices=CASES, help="run this case here (the script runs each in a new process)")
    args = parser.parse_args()
    files = recordings(args.audio_dir, args.seconds)
    if len(files) < 8 * args.batches:
        raise SystemExit(f"{args.audio_dir}: {len(files)} recordings of {args.seconds} s; need {8 * args.batches}")
    if args.case:
        print(
            json.dumps(
                {
                    "case": args.case,
                    "batches_of_8": args.batches,
                    **run_case(args.case, args.model_dir, files, args.batches),
                }
            )
        )
        return
    for case in CASES:
        command = [sys.executable, __file__, str(args.model_dir), str(args.audio_dir), "--case", case]
        command += ["--seconds", str(args.seconds), "--batches", str(args.batches)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
