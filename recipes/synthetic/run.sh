#!/usr/bin/env bash
# Synthetic speech on a CPU: text-to-speech voices read free English texts into one
# LibriSpeech-layout corpus per engine; a LAS trained on the voices of some engines (with
# reverberation, noise and gain added on the fly) is evaluated on held-out voices of those
# engines and on an engine it never heard, then `asr transcribe` transcribes a few recordings,
# one of them real speech when speechocean762 is at hand. Needs no download beyond Debian's
# TTS engines and texts (installed by `make install`). `make demo` runs it.
#
#   recipes/synthetic/run.sh [--data DIR] [--exp DIR] [--engines espeak,flite] [--held-out-engine festival]
#                            [--train-utterances N] [--config FILE] [--stage N] [--stop-stage N] [--nproc N]
#                            [--speechocean DIR] [--train-lm [--lm-config FILE] | --lm DIR] [--lm-weights W,W,...]
#
#   0 synthesise DIR/<engine>/{train,dev,test} for each engine, the same seed and sizes for all,
#     so that the test sentences (the same for every engine) are in no training set; voices are
#     disjoint across subsets; the held-out engine gets a test set only (DIR/<engine>_test)
#   1 manifests: train (the engines' train sets, batched together), dev, and two test sets:
#     "test" (held-out voices of the training engines) and the held-out engine's; engines.txt, the
#     engine of each test speaker (RESULTS.md gets a row per engine)
#   2 (with --train-lm) a character LM into EXP/lm: the texts' sentences without any of the dev
#     and test sets (with --vocabulary N, only those of the N-word vocabulary: the corpus's own
#     text), trained with --lm-config (conf/lm.yaml; conf/lm_closed.yaml with --vocabulary)
#   3-6 the LibriSpeech recipe's stages: statistics, train, average, evaluate (RESULTS.md)
#   7 transcribe a held-out voice, a held-out-engine recording and a real one with asr transcribe
#
# --train-lm, or --lm DIR (a character LM: asr lm train), also runs the LibriSpeech recipe's
# stage 8: the LM weight chosen on dev among --lm-weights, the test sets decoded with it (rows
# added to RESULTS.md); --beam B and --ctc-weight W set the search of stages 6 and 8.
set -euo pipefail

data=data/synth
exp=exp/synthetic
engines=espeak,flite
held_out_engine=festival
train_utterances=1500
dev_utterances=100
test_utterances=300
vocabulary=0                   # 0: every sentence of the texts (open vocabulary); N: the N most frequent words
config=recipes/synthetic/conf/general.yaml
stage=0
stop_stage=7
nproc=2
asr=${ASR:-.venv/bin/asr}
speechocean=../shared/data/speechocean762
lm=""
train_lm=false
lm_config=""                   # default: conf/lm.yaml, or conf/lm_closed.yaml with --vocabulary
. "$(dirname "$0")/../parse_options.sh" "$@"
selected() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
read -r -a training <<< "$(echo "$engines" | tr ',' ' ')"
manifests=$exp/manifests
mkdir -p "$manifests"

if selected 0; then
    echo "== stage 0: synthesise one corpus per engine (${training[*]}; held out: $held_out_engine)"
    for engine in "${training[@]}"; do
        "$asr" synthesize --out "$data/$engine" --engines "$engine" --vocabulary "$vocabulary" \
            --train-utterances "$train_utterances" --dev-utterances "$dev_utterances" \
            --test-utterances "$test_utterances" --jobs "$(nproc)"
    done
    # dev and train are cut after the test sentences: a held-out engine needs no dev set, but the same test sentences
    "$asr" synthesize --out "$data/${held_out_engine}_test" --engines "$held_out_engine" --vocabulary "$vocabulary" \
        --train-utterances 0 --dev-utterances 0 --test-utterances "$test_utterances" --jobs "$(nproc)"
fi

if selected 1; then
    echo "== stage 1: manifests"
    for engine in "${training[@]}"; do
        "$asr" prepare librispeech "$data/$engine" --subsets train,dev,test --out "$manifests/$engine"
    done
    "$asr" prepare librispeech "$data/${held_out_engine}_test" --subsets test --out "$manifests/$held_out_engine"
    for subset in train dev test; do
        for engine in "${training[@]}"; do cat "$manifests/$engine/$subset.jsonl"; done > "$manifests/$subset.jsonl"
    done
    cp "$manifests/$held_out_engine/test.jsonl" "$manifests/$held_out_engine.jsonl"
    # each test speaker's engine (speaker numbers are disjoint across engines): a RESULTS.md row per engine
    for engine in "${training[@]}" "$held_out_engine"; do
        grep -o '"speaker": "[^"]*"' "$manifests/$engine/test.jsonl" | cut -d'"' -f4 | sort -u | sed "s/\$/ $engine/"
    done > "$manifests/engines.txt"
fi

if $train_lm; then
    lm=$exp/lm/model
    if selected 2; then
        echo "== stage 2: a character LM on the texts, without the dev and test sentences"
        [ "$vocabulary" -gt 0 ] && default_lm_config=lm_closed.yaml || default_lm_config=lm.yaml
        if [ ! -f "$exp/lm-dev.txt" ]; then  # written last, atomically: a re-run resumes training, not the text
            "$asr" lm text --vocabulary "$vocabulary" --out "$exp/lm-text.txt" \
                --exclude "$manifests/dev.jsonl" "$manifests/test.jsonl" "$manifests/$held_out_engine.jsonl"
            "$asr" lm text --transcripts "$manifests/dev.jsonl" --out "$exp/lm-dev.txt"
        fi
        # one thread: this LSTM's operations are too small to share (recipes/synthetic/conf/lm.yaml)
        OMP_NUM_THREADS=1 "$asr" lm train --config "${lm_config:-$(dirname "$0")/conf/$default_lm_config}" \
            --text "$exp/lm-text.txt" --dev-text "$exp/lm-dev.txt" --out "$exp/lm"
    fi
fi

recipes=$(dirname "$0")/..
last=$(( stop_stage < 6 ? stop_stage : 6 ))
[ -n "$lm" ] && [ "$stop_stage" -ge 6 ] && last=8   # with an LM: also stage 8, its weight and the test sets with it
if [ "$stop_stage" -ge 3 ] && [ "$stage" -le "$last" ]; then
    sources=$(for engine in "${training[@]}"; do printf '{manifest: %s}, ' "$manifests/$engine/train.jsonl"; done)
    # two training processes of one thread each use two cores better than one process of two threads
    "$recipes/librispeech/run.sh" --stage "$(( stage > 3 ? stage : 3 ))" --stop-stage "$last" \
        --exp "$exp" --manifests "$manifests" --dev dev --test "test,$held_out_engine" --nproc "$nproc" \
        --config "$config" --set "data.train=[${sources%, }]" --groups "$manifests/engines.txt" ${lm:+--lm "$lm"} \
        "${passthrough[@]}"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
    echo "== stage 7: transcribe a held-out voice, a held-out engine and real speech"
    files=("$(head -n 1 "$manifests/test.jsonl")" "$(head -n 1 "$manifests/$held_out_engine.jsonl")")
    if [ -f "$speechocean/test/wav.scp" ]; then
        files+=("$(printf '{"audio": "%s", "text": "%s"}' "$speechocean/$(head -n 1 "$speechocean/test/wav.scp" | cut -f2)" \
            "$(head -n 1 "$speechocean/test/text" | cut -f2-)")")
    fi
    for line in "${files[@]}"; do
        audio=$(echo "$line" | "$(dirname "$asr")/python" -c "import json,sys; print(json.load(sys.stdin)['audio'])")
        text=$(echo "$line" | "$(dirname "$asr")/python" -c "import json,sys; print(json.load(sys.stdin)['text'])")
        echo "$audio"
        echo "  REF: $text"
        echo "  HYP: $("$asr" transcribe --model "$exp/model" "$audio")"
    done
    echo
    cat "$exp/RESULTS.md"
fi
