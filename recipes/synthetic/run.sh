#!/usr/bin/env bash
# Synthetic LibriSpeech-layout corpus: TTS voices reading free English texts, then the
# LibriSpeech recipe's stages 2-6 on it. Runs on a CPU; needs no download beyond
# Debian's TTS engines and texts (installed by `make install`).
#
#   recipes/synthetic/run.sh [--data DIR] [--exp DIR] [--train-utterances N] [--stage N] [--stop-stage N]
#
#   0 synthesise DIR/{train,dev,test} (resumes; voices and sentences disjoint across subsets)
#   2-6 prepare, statistics, train, average, evaluate on the held-out test voices (RESULTS.md)
set -euo pipefail

data=data/synth
exp=exp/synthetic
train_utterances=3000
dev_utterances=200
test_utterances=300
stage=0
stop_stage=6
asr=${ASR:-.venv/bin/asr}
passthrough=()
while [ $# -gt 0 ]; do
    case "$1" in
        --data) data=$2; shift 2 ;;
        --exp) exp=$2; shift 2 ;;
        --train-utterances) train_utterances=$2; shift 2 ;;
        --dev-utterances) dev_utterances=$2; shift 2 ;;
        --test-utterances) test_utterances=$2; shift 2 ;;
        --stage) stage=$2; shift 2 ;;
        --stop-stage) stop_stage=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) passthrough+=("$1"); shift ;;
    esac
done

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    echo "== stage 0: synthesise the corpus"
    "$asr" synthesize --out "$data" --train-utterances "$train_utterances" --dev-utterances "$dev_utterances" \
        --test-utterances "$test_utterances" --noise-prob 0.2 --jobs "$(nproc)"
fi

recipes=$(dirname "$0")/..
"$recipes/librispeech/run.sh" --stage "$(( stage > 2 ? stage : 2 ))" --stop-stage "$stop_stage" \
    --data "$data" --train train --dev dev --test test --exp "$exp" \
    --config "$recipes/synthetic/conf/train.yaml" --beam 4 --ctc-weight 0.3 "${passthrough[@]}"
