"""Join a manifest's utterances into long ones, as LibriSpeech's test sets hold utterances of up to 35 s
while its training configs drop those over 20 s: how does a model decode audio longer than it was
trained on?

    python recipes/synthetic/local/join_utterances.py MANIFEST OUT_DIR [--shortest 20] [--longest 35] [--pause 0.4]

Consecutive utterances of one speaker (in manifest order) are joined, with `--pause` seconds of
silence between them, until the recording lasts at least a length drawn (seeded) between
`--shortest` and `--longest` seconds for it, and never more than `--longest` (what cannot reach
its length is left out). Writes OUT_DIR/audio/*.flac and
OUT_DIR/joined.jsonl (the transcripts joined by spaces); prints the count and the durations.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from pathlib import Path

import soundfile
import torch

from asr.data.manifest import Utterance, read_manifest, write_manifest
from asr.frontend.audio import SAMPLE_RATE


def runs(utterances: list[Utterance], shortest: float, longest: float, pause: float) -> list[list[Utterance]]:
    """Groups of consecutive utterances of one speaker lasting `shortest`..`longest` s with pauses between."""
    by_speaker: dict[str | None, list[Utterance]] = defaultdict(list)
    for utterance in utterances:
        by_speaker[utterance.speaker].append(utterance)
    draw = random.Random(0)
    groups = []
    for spoken in by_speaker.values():
        group: list[Utterance] = []
        target = draw.uniform(shortest, longest)
        for utterance in spoken:
            if group and sum(u.duration + pause for u in group) + utterance.duration > longest:
                group = []  # this one would make the group too long: start again from it
            group.append(utterance)
            if sum(u.duration for u in group) + pause * (len(group) - 1) >= target:
                groups.append(group)
                group, target = [], draw.uniform(shortest, longest)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shortest", type=float, default=20.0, help="seconds (default: %(default)s)")
    parser.add_argument("--longest", type=float, default=35.0, help="seconds (default: %(default)s)")
    parser.add_argument("--pause", type=float, default=0.4, help="seconds of silence between (default: %(default)s)")
    args = parser.parse_args()
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    silence = torch.zeros(round(args.pause * SAMPLE_RATE))
    joined = []
    for group in runs(read_manifest(args.manifest), args.shortest, args.longest, args.pause):
        pieces = [piece for u in group for piece in (u.load(), silence)][:-1]
        audio = torch.cat(pieces)
        name = f"{group[0].id}+{len(group) - 1}"
        path = (args.out / "audio" / f"{name}.flac").resolve()
        soundfile.write(path, audio.numpy(), SAMPLE_RATE, subtype="PCM_16")
        text = " ".join(u.text for u in group)
        joined.append(Utterance(name, path, audio.shape[0] / SAMPLE_RATE, text, group[0].speaker))
    write_manifest(args.out / "joined.jsonl", joined)
    durations = sorted(u.duration for u in joined)
    print(f"{args.out / 'joined.jsonl'}: {len(joined)} utterances of {durations[0]:.1f}..{durations[-1]:.1f} s")


if __name__ == "__main__":
    main()
