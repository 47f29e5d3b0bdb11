#!/usr/bin/env bash
# AISHELL-1 (OpenSLR 33): 178 hours of Mandarin read by 400 speakers, split by speaker into
# train, dev and test. A model spells Chinese characters, without the spaces of the transcript's
# word segmentation, and is judged by its character error rate (conf/train.yaml's text section).
#
#   recipes/aishell/run.sh [--data DIR] [--exp DIR] [--config FILE] [--stage N] [--stop-stage N]
#                          [--nproc N] [--set KEY=VALUE ...]
#
#   1 download data_aishell.tgz (15 GB) and resource_aishell.tgz (the lexicon and speaker details;
#     no stage reads them) from openslr.org into DIR (resumable), extract them, then extract each
#     speaker's archive data_aishell/wav/*.tar.gz (removed once extracted, as Kaldi's recipe does);
#     skipped when DIR/data_aishell/.complete exists
#   2 manifests of train, dev and test (asr prepare aishell; the transcripts kept as they are;
#     recordings without a transcript line and lines without a recording are counted and skipped)
#   3-6 the LibriSpeech recipe's stages: statistics, train, average, evaluate test (RESULTS.md,
#     the CER in bold)
#
# The options of the LibriSpeech recipe's stages 3-6 (--beam, --device, --batch-size, --set
# KEY=VALUE for the training config) pass through.
set -euo pipefail

data=data/aishell              # holds data_aishell/ and resource_aishell/ (downloads go here)
exp=exp/aishell
config=recipes/aishell/conf/train.yaml
stage=1
stop_stage=6
nproc=1
asr=${ASR:-.venv/bin/asr}
. "$(dirname "$0")/../parse_options.sh" "$@"
manifests=$exp/manifests
mkdir -p "$exp/.done" "$manifests"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -f "$data/data_aishell/.complete" ]; then
    echo "== stage 1: download and extract"
    mkdir -p "$data"
    for part in data_aishell resource_aishell; do
        wget --continue --progress=dot:giga -P "$data" "https://www.openslr.org/resources/33/$part.tgz"
        tar -xzf "$data/$part.tgz" -C "$data"
    done
    for speaker in "$data"/data_aishell/wav/*.tar.gz; do
        tar -xzf "$speaker" -C "$data/data_aishell/wav"   # wav/<split>/S####/*.wav
        rm "$speaker"
    done
    touch "$data/data_aishell/.complete"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ ! -f "$exp/.done/2" ]; then
    echo "== stage 2: manifests of train, dev and test"
    "$asr" prepare aishell "$data" --splits train,dev,test --normalizer unicode --no-spaces --out "$manifests"
    touch "$exp/.done/2"
fi

if [ "$stop_stage" -ge 3 ]; then
    recipes=$(dirname "$0")/..
    "$recipes/librispeech/run.sh" --stage "$(( stage > 3 ? stage : 3 ))" --stop-stage "$stop_stage" \
        --exp "$exp" --manifests "$manifests" --dev dev --test test --nproc "$nproc" \
        --config "$config" "${passthrough[@]}"
fi
