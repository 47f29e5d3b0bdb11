#!/usr/bin/env bash
# Synthetic speech on a CPU: TTS voices read free English texts into a LibriSpeech-layout
# corpus, then the LibriSpeech recipe's stages 2-6 train and evaluate a LAS on it, and
# `asr transcribe` transcribes a few held-out recordings. Needs no download beyond
# Debian's TTS engines and texts (installed by `make install`). `make demo` runs it.
#
#   recipes/synthetic/run.sh [--data DIR] [--exp DIR] [--train-utterances N] [--engines LIST]
#                            [--stage N] [--stop-stage N] [--nproc N]
#
#   0 synthesise DIR/{train,dev,test}: voices and sentences disjoint across subsets (resumes)
#   2-6 prepare, statistics, train, average, evaluate on the held-out test voices (RESULTS.md)
#   7 transcribe three held-out test recordings with asr transcribe
#
# The corpus: espeak-ng's voices (8 English accents x 16 variants, each at 3 rates and 3
# pitches), sentences made of the 1,000 most frequent words of the three texts. The
# recorded-voice engines (flite, festival: --engines espeak,flite,festival) have five
# talkers in all, too few for a model to learn to generalise to an unseen one.
set -euo pipefail

data=data/synth
exp=exp/synthetic
train_utterances=4000
dev_utterances=200
test_utterances=300
engines=espeak
vocabulary=1000
stage=0
stop_stage=7
nproc=2
asr=${ASR:-.venv/bin/asr}
passthrough=()
while [ $# -gt 0 ]; do
    case "$1" in
        --data) data=$2; shift 2 ;;
        --exp) exp=$2; shift 2 ;;
        --train-utterances) train_utterances=$2; shift 2 ;;
        --dev-utterances) dev_utterances=$2; shift 2 ;;
        --test-utterances) test_utterances=$2; shift 2 ;;
        --engines) engines=$2; shift 2 ;;
        --vocabulary) vocabulary=$2; shift 2 ;;
        --stage) stage=$2; shift 2 ;;
        --stop-stage) stop_stage=$2; shift 2 ;;
        --nproc) nproc=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) passthrough+=("$1"); shift ;;
    esac
done

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    echo "== stage 0: synthesise the corpus ($engines voices)"
    "$asr" synthesize --out "$data" --engines "$engines" --vocabulary "$vocabulary" \
        --train-utterances "$train_utterances" --dev-utterances "$dev_utterances" \
        --test-utterances "$test_utterances" --jobs "$(nproc)"
fi

recipes=$(dirname "$0")/..
if [ "$stop_stage" -ge 2 ] && [ "$stage" -le 6 ]; then
    # two training processes of one thread each use two cores better than one process of two threads
    "$recipes/librispeech/run.sh" --stage "$(( stage > 2 ? stage : 2 ))" --stop-stage "$(( stop_stage < 6 ? stop_stage : 6 ))" \
        --data "$data" --train train --dev dev --test test --exp "$exp" --nproc "$nproc" \
        --config "$recipes/synthetic/conf/train.yaml" "${passthrough[@]}"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
    echo "== stage 7: transcribe three held-out test recordings"
    mapfile -t files < <(find "$data/test" -name '*.flac' | sort | awk 'NR % 100 == 1' | head -n 3)
    "$asr" transcribe --model "$exp/model" "${files[@]}" | while IFS=$'\t' read -r file text; do
        id=$(basename "$file" .flac)
        echo "$file"
        echo "  REF: $(grep -h "^$id " "$(dirname "$file")"/*.trans.txt | cut -d' ' -f2-)"
        echo "  HYP: $text"
    done
    echo
    cat "$exp/RESULTS.md"
fi
