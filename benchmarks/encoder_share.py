"""How much of a training step is the encoder, for this project's systems and SpeechBrain's,
on the peer benchmark's batch (../shared/bench/peers_las.py). One JSON line per system.

    ~/.cache/peers-venv/bin/python benchmarks/encoder_share.py \\
        --systems benchmarks/peer_adapter.py:system_lean_att,sb_att --threads 2

For each system, in one process: the harness's training step (forward, loss, backward), and
the encoder alone (its forward on the batch, then the backward of the sum of its output),
each the median of `--repeats` runs after `--warmup`. The encoder's time is a floor under
the step's: a step can be no faster than its encoder, so if one system's encoder takes
more than half of another's whole step, no change outside the encoder brings the first
to half the second's step time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import peers_las as H  # noqa: E402  (the harness, beside this checkout)


def median_seconds(run: Callable[[], object], warmup: int, repeats: int) -> float:
    """The harness's own timing (`peers_las.timed`): the median of `repeats` runs after `warmup`."""
    return statistics.median(H.timed(run, warmup, repeats)[0])


def encoder_step(runner: H.Runner, batch: H.Batch) -> Callable[[], None]:
    """Forward and backward of the system's encoder alone on the batch."""
    model = runner.model
    if hasattr(model, "listener"):  # this project's LAS

        def run() -> None:
            model.zero_grad(set_to_none=True)
            encoded, _ = model.listener(batch.feats, batch.feat_lens)
            encoded.sum().backward()

    elif isinstance(model, torch.nn.ModuleDict) and "enc" in model:  # the harness's SpeechBrain systems

        def run() -> None:
            model.zero_grad(set_to_none=True)
            model["enc"](batch.feats, batch.rel_lens).sum().backward()

    else:
        raise SystemExit(f"encoder_share.py: no encoder known for a {type(model).__name__}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default="benchmarks/peer_adapter.py:system_lean_att,sb_att")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--units", type=int, default=H.EUNITS)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = argparse.Namespace(units=args.units, sb_pack=False)
    batch = H.make_batch()
    for spec in args.systems.split(","):
        torch.manual_seed(0)
        _, build = H.resolve(spec)
        runner = build(batch, cfg)
        runner.model.train()
        step = median_seconds(runner.train_step, args.warmup, args.repeats)
        encoder = median_seconds(encoder_step(runner, batch), args.warmup, args.repeats)
        record = {
            "system": spec,
            "workload": f"peers_las.py batch: {batch.size} utterances, {args.units} units, {args.threads} threads",
            "train_step_s": round(step, 3),
            "encoder_forward_backward_s": round(encoder, 3),
            "encoder_share": round(encoder / step, 3),
            "repeats": args.repeats,
            "warmup": args.warmup,
            "torch": torch.__version__,
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
