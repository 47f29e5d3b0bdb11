#!/usr/bin/env bash
# Leave one engine out: how well a model trained on the voices of two text-to-speech engines
# recognises a third engine it never heard. The project's measure of generalisation to
# unseen voices; the table goes into recipes/synthetic/RESULTS.md.
#
#   recipes/synthetic/leave_one_engine_out.sh [--data DIR] [--exp DIR] [--config FILE] [--nproc N]
#                                             [--train-utterances N] [--stage N] [--stop-stage N]
#
#   0 synthesise one corpus per engine (espeak-ng, flite, festival) with the same seed and sizes,
#     so their test sentences are the same and appear in no engine's training set
#   1 manifests of each engine's train, dev and test subsets
#   2 for each engine held out: train on the other two (the LibriSpeech recipe's stages 3-6),
#     evaluate on the held-out engine's test set and on the held-out voices of the two others
#   3 the table EXP/RESULTS.md: rows the training engines, columns the test sets
set -euo pipefail

data=data/engines
exp=exp/leave_one_engine_out
config=recipes/synthetic/conf/general.yaml
engines=(espeak flite festival)
train_utterances=2000
stage=0
stop_stage=3
nproc=2
asr=${ASR:-.venv/bin/asr}
passthrough=()
while [ $# -gt 0 ]; do
    case "$1" in
        --data) data=$2; shift 2 ;;
        --exp) exp=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --train-utterances) train_utterances=$2; shift 2 ;;
        --nproc) nproc=$2; shift 2 ;;
        --stage) stage=$2; shift 2 ;;
        --stop-stage) stop_stage=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) passthrough+=("$1"); shift ;;
    esac
done
selected() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
mkdir -p "$exp"

if selected 0; then
    echo "== stage 0: one corpus per engine"
    for engine in "${engines[@]}"; do
        "$asr" synthesize --out "$data/$engine" --engines "$engine" --vocabulary 0 \
            --train-utterances "$train_utterances" --dev-utterances 100 --test-utterances 300 --jobs "$(nproc)"
    done
fi

if selected 1; then
    echo "== stage 1: manifests"
    for engine in "${engines[@]}"; do
        "$asr" prepare librispeech "$data/$engine" --subsets train,dev,test --out "$exp/manifests/$engine"
    done
fi

if selected 2; then
    recipes=$(dirname "$0")/..
    for held in "${engines[@]}"; do
        others=()
        for engine in "${engines[@]}"; do [ "$engine" = "$held" ] || others+=("$engine"); done
        run=$exp/without_$held
        mkdir -p "$run/manifests"
        echo "== stage 2: train on ${others[*]}, test on $held"
        for subset in train dev test; do
            for engine in "${others[@]}"; do cat "$exp/manifests/$engine/$subset.jsonl"; done > "$run/manifests/$subset.jsonl"
        done
        cp "$exp/manifests/$held/test.jsonl" "$run/manifests/$held.jsonl"
        sources="[{manifest: $exp/manifests/${others[0]}/train.jsonl}, {manifest: $exp/manifests/${others[1]}/train.jsonl}]"
        "$recipes/librispeech/run.sh" --stage 3 --exp "$run" --manifests "$run/manifests" --dev dev \
            --test "$held,test" --nproc "$nproc" --config "$config" --set "data.train=$sources" "${passthrough[@]}"
    done
fi

if selected 3; then
    "$(dirname "$asr")/python" - "$exp" "${engines[@]}" > "$exp/RESULTS.md" <<'PY'
import json, pathlib, sys
exp, engines = pathlib.Path(sys.argv[1]), sys.argv[2:]
print("| trained on | held-out engine | WER % | insertion rate % | CER % | held-out voices of the training engines: WER % | insertion rate % |")
print("|---|---|---|---|---|---|---|")
for held in engines:
    run = exp / f"without_{held}" / "eval"
    engine, voices = (json.loads((run / name / "summary.json").read_text()) for name in (held, "test"))
    trained = " + ".join(e for e in engines if e != held)
    print(f"| {trained} | {held} | {engine['wer']:.2f} | {100 * engine['insertions'] / engine['words']:.2f} | "
          f"{engine['cer']:.2f} | {voices['wer']:.2f} | {100 * voices['insertions'] / voices['words']:.2f} |")
PY
    cat "$exp/RESULTS.md"
fi
