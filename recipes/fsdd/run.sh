#!/usr/bin/env bash
# Free Spoken Digit Dataset recipe: real recordings of "zero" to "nine" (6 speakers, 8 kHz).
#
#   recipes/fsdd/run.sh [--data DIR] [--exp DIR] [--stage N] [--stop-stage N]
#
#   1 download the dataset from its GitHub repository into DIR (skipped if DIR/recordings exists)
#   2 write DIR/transcripts.tsv if missing, prepare manifests, split: the official test set
#     (index 0-4 of each digit and speaker), dev (index 5-9, for model selection), train (10-49)
#   3-6 the LibriSpeech recipe's stages: statistics, train, average, evaluate (RESULTS.md)
set -euo pipefail

data=data/fsdd
exp=exp/fsdd
stage=1
stop_stage=6
asr=${ASR:-.venv/bin/asr}
. "$(dirname "$0")/../parse_options.sh" "$@"
manifests=$exp/manifests
mkdir -p "$exp/.done" "$manifests"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -d "$data/recordings" ]; then
    echo "== stage 1: download"
    mkdir -p "$data"
    wget --continue -O "$data/fsdd.tar.gz" \
        https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.tar.gz
    tar -xzf "$data/fsdd.tar.gz" -C "$data" --strip-components=1
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ ! -f "$exp/.done/2" ]; then
    echo "== stage 2: prepare manifests"
    "$(dirname "$asr")/python" - "$data" "$manifests" <<'PY'
import json, pathlib, sys
data, manifests = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
words = "zero one two three four five six seven eight nine".split()
table = data / "transcripts.tsv"
if not table.exists():  # the GitHub repository has recordings only; their names say what is spoken
    rows = ["file\tdigit\tspeaker\tindex\ttext"]
    for wav in sorted((data / "recordings").glob("*.wav")):
        digit, speaker, index = wav.stem.split("_")
        rows.append(f"recordings/{wav.name}\t{digit}\t{speaker}\t{index}\t{words[int(digit)]}")
    table.write_text("\n".join(rows) + "\n")
PY
    "$asr" prepare tsv "$data/transcripts.tsv" --out "$manifests/all.jsonl"
    "$(dirname "$asr")/python" - "$manifests" <<'PY'
import json, pathlib, sys
manifests = pathlib.Path(sys.argv[1])
lines = (manifests / "all.jsonl").read_text().splitlines()
split = {"test": range(0, 5), "dev": range(5, 10), "train": range(10, 50)}
for name, indices in split.items():
    chosen = [l for l in lines if int(json.loads(l)["id"].rsplit("_", 1)[1]) in indices]
    (manifests / f"{name}.jsonl").write_text("\n".join(chosen) + "\n")
    print(f"{name}: {len(chosen)} utterances")
PY
    touch "$exp/.done/2"
fi

recipes=$(dirname "$0")/..
"$recipes/librispeech/run.sh" --stage "$(( stage > 3 ? stage : 3 ))" --stop-stage "$stop_stage" \
    --exp "$exp" --manifests "$manifests" --dev dev --test test \
    --config "$recipes/fsdd/conf/train.yaml" "${passthrough[@]}"
