#!/usr/bin/env bash
# Common Voice (Mozilla): sentences read by volunteers in over a hundred languages; one model a
# language, spelling its letters as they are written (conf/train.yaml: the unicode normaliser).
#
#   recipes/commonvoice/run.sh --language LANG [--archive FILE] [--data DIR] [--exp DIR] [--config FILE]
#                              [--stage N] [--stop-stage N] [--nproc N] [--set KEY=VALUE ...]
#
#   1 extract --archive FILE, the cv-corpus-*-LANG.tar.gz downloaded from
#     https://commonvoice.mozilla.org/datasets (Mozilla's terms must be accepted there, so no
#     script downloads it), into DIR; skipped when DIR holds cv-corpus-*/LANG/ already
#   2 manifests of the official train, dev and test splits (asr prepare commonvoice; the
#     sentences kept as written, the clips read as MP3)
#   3-6 the LibriSpeech recipe's stages: statistics, train, average, evaluate test (RESULTS.md)
#
# --language is the folder name of the release (de, fr, cy, zh-CN, ...); EXP defaults to
# exp/commonvoice_LANG. The options of the LibriSpeech recipe's stages 3-6 (--beam, --device,
# --batch-size, --set KEY=VALUE for the training config) pass through.
set -euo pipefail

language=""
archive=""
data=data/commonvoice          # holds cv-corpus-*/LANG/ (extracted here)
exp=""
config=recipes/commonvoice/conf/train.yaml
stage=1
stop_stage=6
nproc=1
asr=${ASR:-.venv/bin/asr}
. "$(dirname "$0")/../parse_options.sh" "$@"
if [ -z "$language" ]; then
    echo "$(basename "$0"): --language LANG is needed (the release's folder name, e.g. de)" >&2
    exit 2
fi
exp=${exp:-exp/commonvoice_$language}
manifests=$exp/manifests
mkdir -p "$exp/.done" "$manifests"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && ! compgen -G "$data/cv-corpus-*/$language/clips" > /dev/null; then
    echo "== stage 1: extract $archive"
    if [ ! -f "$archive" ]; then
        echo "$(basename "$0"): no $data/cv-corpus-*/$language; download cv-corpus-*-$language.tar.gz from" \
            "https://commonvoice.mozilla.org/datasets (accepting Mozilla's terms) and give it with --archive FILE" >&2
        exit 1
    fi
    mkdir -p "$data"
    tar -xzf "$archive" -C "$data"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ ! -f "$exp/.done/2" ]; then
    echo "== stage 2: manifests of train, dev and test"
    "$asr" prepare commonvoice "$data" --language "$language" --splits train,dev,test --out "$manifests"
    touch "$exp/.done/2"
fi

if [ "$stop_stage" -ge 3 ]; then
    recipes=$(dirname "$0")/..
    "$recipes/librispeech/run.sh" --stage "$(( stage > 3 ? stage : 3 ))" --stop-stage "$stop_stage" \
        --exp "$exp" --manifests "$manifests" --dev dev --test test --nproc "$nproc" \
        --config "$config" "${passthrough[@]}"
fi
