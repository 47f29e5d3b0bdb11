#!/usr/bin/env bash
# Synthetic speech on a CPU: text-to-speech voices read free English texts into one
# LibriSpeech-layout corpus per engine; a LAS trained on the voices of some engines (with
# reverberation, noise and gain added on the fly) is evaluated on held-out voices of those
# engines and on an engine it never heard, then `asr transcribe` transcribes a few recordings,
# one of them real speech when speechocean762 is at hand. Needs no download beyond Debian's
# TTS engines and texts (installed by `make install`). `make demo` runs it.
#
#   recipes/synthetic/run.sh [--data DIR] [--exp DIR] [--engines espeak,flite] [--held-out-engine festival|none]
#                            [--train-utterances N] [--config FILE] [--stage N] [--stop-stage N] [--nproc N]
#                            [--speechocean DIR [--with-speechocean [--speechocean-repeat N]]]
#                            [--train-lm [--lm-config FILE] | --lm DIR] [--lm-weights W,W,...]
#
#   0 (with --with-speechocean) speechocean762's manifests: its training set less a speaker-disjoint
#     tenth for dev (seeded), its official test set, the age group of each speaker; then
#     synthesise DIR/<engine>/{train,dev,test} for each engine, the same seed and sizes for all,
#     so that the test sentences (the same for every engine) are in no training set, nor
#     speechocean762's dev and test sentences; voices are disjoint across subsets; the held-out
#     engine gets a dev set and a test set of voices of its own each (DIR/<engine>_unheard, no
#     talker a training engine has: one voice to choose settings on, the other to test on once);
#     --held-out-engine none: no engine held out
#   1 manifests: train (the engines' train sets, batched together), dev (validation draws equal
#     parts of each engine's dev set, across its speakers), the held-out engine's dev set
#     (<engine>_dev, decoded in stage 6 as a dev row), and two test sets: "test" (held-out voices
#     of the training engines) and the held-out engine's; engines.txt, the engine (or
#     speechocean762's age group) of each dev and test speaker (RESULTS.md gets a row per group).
#     With --with-speechocean, speechocean762's training set joins training (--speechocean-repeat
#     passes an epoch), its dev set comes first in dev, and its test set is a third test set:
#     `make demo-general`, the most general model of the project (all three engines and real speech)
#   2 (with --train-lm) a character LM into EXP/lm: the texts' sentences without any of the dev
#     and test sets (with --vocabulary N, only those of the N-word vocabulary: the corpus's own
#     text), trained with --lm-config (conf/lm.yaml; conf/lm_closed.yaml with --vocabulary)
#   3-6 the LibriSpeech recipe's stages: statistics, train, average, evaluate (RESULTS.md; utterances
#     longer than the model's longest training utterance cut at pauses: --max-seconds model)
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
with_speechocean=false         # also train on speechocean762's training set, test on its test set
speechocean_repeat=2           # passes over speechocean762's training set per epoch (2,260 utterances)
lm=""
train_lm=false
lm_config=""                   # default: conf/lm.yaml, or conf/lm_closed.yaml with --vocabulary
. "$(dirname "$0")/../parse_options.sh" "$@"
selected() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
read -r -a training <<< "$(echo "$engines" | tr ',' ' ')"
manifests=$exp/manifests
mkdir -p "$manifests"
held_out=()                    # the engine whose voices training never hears, if any
[ "$held_out_engine" = none ] || held_out=("$held_out_engine")
real=$manifests/speechocean
exclude=()                     # what no synthesised sentence may read
if $with_speechocean; then
    [ -f "$speechocean/train/wav.scp" ] || { echo "$(basename "$0"): --with-speechocean: $speechocean/train/wav.scp not found; give --speechocean DIR" >&2; exit 2; }
    exclude=(--exclude "$real/dev.jsonl" "$real/test.jsonl")
fi

if selected 0; then
    if $with_speechocean; then
        echo "== stage 0: speechocean762's manifests, a speaker-disjoint dev set, age groups"
        mkdir -p "$real"
        "$asr" prepare kaldi "$speechocean/train" --out "$real/train_all.jsonl"
        "$asr" prepare kaldi "$speechocean/test" --out "$real/test.jsonl"
        # speakers "so0003" ...: apart from the engines' numbered ones (speechocean762 has "1033", so may an engine)
        sed -i 's/"speaker": "/"speaker": "so/' "$real/train_all.jsonl" "$real/test.jsonl"
        "$asr" split "$real/train_all.jsonl" --held-out 0.1 --seed 0 --out-kept "$real/train.jsonl" --out-held "$real/dev.jsonl"
        cat "$speechocean/train/spk2age" "$speechocean/test/spk2age" \
            | awk '{ print "so" $1, ($2 < 18 ? "children" : "adults") }' > "$real/age_groups"
    fi
    echo "== stage 0: synthesise one corpus per engine (${training[*]}; held out: $held_out_engine)"
    for engine in "${training[@]}"; do
        "$asr" synthesize --out "$data/$engine" --engines "$engine" --vocabulary "$vocabulary" \
            --train-utterances "$train_utterances" --dev-utterances "$dev_utterances" \
            --test-utterances "$test_utterances" --jobs "$(nproc)" "${exclude[@]}"
    done
    # the same seed and sizes: the held-out engine reads the same dev and test sentences, by voices of its own
    # whose talkers no training engine has (flite's kal16 and slt are festival's kal and HTS slt)
    for engine in "${held_out[@]}"; do
        "$asr" synthesize --out "$data/${engine}_unheard" --engines "$engine" --unheard-engines "$engines" \
            --vocabulary "$vocabulary" \
            --train-utterances 0 --dev-utterances "$dev_utterances" --test-utterances "$test_utterances" \
            --jobs "$(nproc)" "${exclude[@]}"
    done
fi

if selected 1; then
    echo "== stage 1: manifests"
    for engine in "${training[@]}"; do
        "$asr" prepare librispeech "$data/$engine" --subsets train,dev,test --out "$manifests/$engine"
    done
    for engine in "${held_out[@]}"; do
        "$asr" prepare librispeech "$data/${engine}_unheard" --subsets dev,test --out "$manifests/$engine"
        cp "$manifests/$engine/test.jsonl" "$manifests/$engine.jsonl"
        cp "$manifests/$engine/dev.jsonl" "$manifests/${engine}_dev.jsonl"
    done
    for subset in train dev test; do
        # speechocean762's dev set first in dev; its training set in train, which the statistics read
        { if $with_speechocean && [ "$subset" != test ]; then cat "$real/$subset.jsonl"; fi
          for engine in "${training[@]}"; do cat "$manifests/$engine/$subset.jsonl"; done; } > "$manifests/$subset.jsonl"
    done
    # each test speaker's engine (speaker numbers are disjoint across engines; speechocean762's speakers
    # have the prefix "so"): a RESULTS.md row per engine, and per age group of speechocean762
    { for engine in "${training[@]}" "${held_out[@]}"; do
        cat "$manifests/$engine/test.jsonl" "$manifests/$engine/dev.jsonl" \
            | grep -o '"speaker": "[^"]*"' | cut -d'"' -f4 | sort -u | sed "s/\$/ $engine/"
      done
      if $with_speechocean; then cat "$real/age_groups"; fi; } > "$manifests/engines.txt"
    if $with_speechocean; then cp "$real/test.jsonl" "$manifests/speechocean762.jsonl"; fi
fi

if $train_lm; then
    lm=$exp/lm/model
    if selected 2; then
        echo "== stage 2: a character LM on the texts, without the dev and test sentences"
        [ "$vocabulary" -gt 0 ] && default_lm_config=lm_closed.yaml || default_lm_config=lm.yaml
        held_out_tests=()    # the held-out engine's and speechocean762's test sets
        for name in "${held_out[@]}" speechocean762; do
            [ ! -f "$manifests/$name.jsonl" ] || held_out_tests+=("$manifests/$name.jsonl")
        done
        if [ ! -f "$exp/lm-dev.txt" ]; then  # written last, atomically: a re-run resumes training, not the text
            "$asr" lm text --vocabulary "$vocabulary" --out "$exp/lm-text.txt" \
                --exclude "$manifests"/{dev,test}.jsonl "${held_out_tests[@]}"
            if $with_speechocean; then "$asr" lm text --transcripts "$real/train.jsonl" --out "$exp/lm-text-speechocean.txt"; fi
            "$asr" lm text --transcripts "$manifests/dev.jsonl" --out "$exp/lm-dev.txt"
        fi
        lm_texts=("$exp/lm-text.txt")   # and speechocean762's training transcripts where it trains the model
        if $with_speechocean; then lm_texts+=("$exp/lm-text-speechocean.txt"); fi
        # one thread: this LSTM's operations are too small to share (recipes/synthetic/conf/lm.yaml)
        OMP_NUM_THREADS=1 "$asr" lm train --config "${lm_config:-$(dirname "$0")/conf/$default_lm_config}" \
            --text "${lm_texts[@]}" --dev-text "$exp/lm-dev.txt" --out "$exp/lm"
    fi
fi

recipes=$(dirname "$0")/..
last=$(( stop_stage < 6 ? stop_stage : 6 ))
[ -n "$lm" ] && [ "$stop_stage" -ge 6 ] && last=8   # with an LM: also stage 8, its weight and the test sets with it
if [ "$stop_stage" -ge 3 ] && [ "$stage" -le "$last" ]; then
    sources=$(for engine in "${training[@]}"; do printf '{manifest: %s}, ' "$manifests/$engine/train.jsonl"; done)
    devs=$(for engine in "${training[@]}"; do printf '%s, ' "$manifests/$engine/dev.jsonl"; done)
    tests=$(printf '%s\n' test "${held_out[@]}" | paste -sd,)
    unseen_dev=$(for engine in "${held_out[@]}"; do echo "${engine}_dev"; done | paste -sd,)
    if $with_speechocean; then
        sources+="{manifest: $real/train.jsonl, repeat: $speechocean_repeat}, "
        devs="$real/dev.jsonl, $devs"
        tests+=,speechocean762
    fi
    # two training processes of one thread each use two cores better than one process of two threads
    "$recipes/librispeech/run.sh" --stage "$(( stage > 3 ? stage : 3 ))" --stop-stage "$last" \
        --exp "$exp" --manifests "$manifests" --dev dev --test "$tests" --nproc "$nproc" \
        --config "$config" --set "data.train=[${sources%, }]" --set "data.dev=[${devs%, }]" \
        --dev-sets "$unseen_dev" --groups "$manifests/engines.txt" --max-seconds model ${lm:+--lm "$lm"} \
        "${passthrough[@]}"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
    echo "== stage 7: transcribe a held-out voice, a held-out engine and real speech"
    files=("$(head -n 1 "$manifests/test.jsonl")")
    for engine in "${held_out[@]}"; do files+=("$(head -n 1 "$manifests/$engine.jsonl")"); done
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
