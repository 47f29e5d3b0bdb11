#!/usr/bin/env bash
# speechocean762 (OpenSLR 101): 5,000 English sentences read by 250 Mandarin-L1 speakers, half of
# them children; real speech that anyone can download, small enough to train on a CPU.
#
#   recipes/speechocean762/run.sh [--data DIR] [--exp DIR] [--config FILE] [--synthetic DIR]
#                                 [--stage N] [--stop-stage N] [--nproc N] [--set KEY=VALUE ...]
#
#   1 download speechocean762.tar.gz from openslr.org into DIR's parent (skipped when DIR/train exists)
#   2 manifests from the Kaldi data directories; dev = 10 % of the training speakers (seeded,
#     speaker-disjoint); the official test set is used for the final figures only; child/adult
#     groups from spk2age (children are 6-15 years old, adults 19-43)
#   3-6 the LibriSpeech recipe's stages: statistics, train, average, evaluate test (RESULTS.md,
#     with a WER for children and one for adults)
#
# --config recipes/speechocean762/conf/finetune.yaml starts from the weights of the demo's model
# (exp/demo/model; --set init_from=DIR for another): what `make demo-real` runs. The default,
# conf/train.yaml, trains from scratch, which these 2.6 hours are too few for (RESULTS.md).
# --synthetic DIR[,DIR...] adds the training sets of synthetic corpora (recipes/synthetic stage 0
# makes one per engine) to training, beside speechocean762's training set repeated --repeat times.
# Keep speechocean762's dev and test sentences out of them (stage 2 writes those manifests first):
#   asr synthesize --out data/engines/flite --engines flite --train-utterances 1000 --dev-utterances 0 \
#       --test-utterances 0 --exclude EXP/manifests/{dev,test}.jsonl
set -euo pipefail

data=../shared/data/speechocean762
[ -d "$data/train" ] || data=data/speechocean762
exp=exp/speechocean762
config=recipes/speechocean762/conf/train.yaml
synthetic=""
repeat=2                       # passes over speechocean762's training set per epoch, with --synthetic
stage=1
stop_stage=6
nproc=2
asr=${ASR:-.venv/bin/asr}
. "$(dirname "$0")/../parse_options.sh" "$@"
manifests=$exp/manifests
mkdir -p "$exp/.done" "$manifests"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -d "$data/train" ]; then
    echo "== stage 1: download"
    parent=$(dirname "$data")
    mkdir -p "$parent"
    wget --continue -P "$parent" https://www.openslr.org/resources/101/speechocean762.tar.gz
    tar -xzf "$parent/speechocean762.tar.gz" -C "$parent"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ ! -f "$exp/.done/2" ]; then
    echo "== stage 2: manifests, a speaker-disjoint dev set, age groups"
    "$asr" prepare kaldi "$data/train" --out "$manifests/train_all.jsonl"
    "$asr" prepare kaldi "$data/test" --out "$manifests/test.jsonl"
    "$asr" split "$manifests/train_all.jsonl" --held-out 0.1 --seed 0 \
        --out-kept "$manifests/train_speechocean.jsonl" --out-held "$manifests/dev.jsonl"
    cat "$data/train/spk2age" "$data/test/spk2age" | awk '{ print $1, ($2 < 18 ? "children" : "adults") }' \
        > "$manifests/age_groups"
    if [ -n "$synthetic" ]; then
        for corpus in $(echo "$synthetic" | tr ',' ' '); do
            "$asr" prepare librispeech "$corpus" --subsets train --out "$manifests/synthetic/$(basename "$corpus")"
        done
        cat "$manifests/train_speechocean.jsonl" "$manifests"/synthetic/*/train.jsonl > "$manifests/train.jsonl"
    else
        cp "$manifests/train_speechocean.jsonl" "$manifests/train.jsonl"
    fi
    touch "$exp/.done/2"
fi

sources=()
if [ -n "$synthetic" ]; then
    # statistics over all (train.jsonl); training draws speechocean762 $repeat times an epoch
    list="{manifest: $manifests/train_speechocean.jsonl, repeat: $repeat}"
    for corpus in $(echo "$synthetic" | tr ',' ' '); do
        list+=", {manifest: $manifests/synthetic/$(basename "$corpus")/train.jsonl}"
    done
    sources=(--set "data.train=[$list]")
fi
if [ "$stop_stage" -ge 3 ]; then
    recipes=$(dirname "$0")/..
    "$recipes/librispeech/run.sh" --stage "$(( stage > 3 ? stage : 3 ))" --stop-stage "$stop_stage" \
        --exp "$exp" --manifests "$manifests" --dev dev --test test --nproc "$nproc" \
        --config "$config" --groups "$manifests/age_groups" "${sources[@]}" "${passthrough[@]}"
fi
