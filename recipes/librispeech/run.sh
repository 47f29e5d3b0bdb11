#!/usr/bin/env bash
# LibriSpeech recipe: numbered stages, each re-runnable (done markers) and skippable.
#
#   recipes/librispeech/run.sh [--stage N] [--stop-stage N] [--data DIR] [--config FILE] [--exp DIR] [--nproc N] ...
#
# --nproc N trains with N processes (torchrun, distributed data parallel): one per GPU,
# or on a CPU-only machine one per core (each with one thread). --ngpu is its old name.
#
#   1 download the chosen subsets from openslr.org (resumable; skips what is there)
#   2 prepare manifests          3 normalisation statistics (vocabulary: the fixed character set)
#   4 train (resumes)            5 average the best checkpoints into EXP/model
#   6 evaluate the test sets and write EXP/RESULTS.md
#
# --beam B and --ctc-weight W override the search of the config's decoding section in stage 6;
# --groups FILE (speaker group) adds a row per group to RESULTS.md.
#
# Other corpora in the LibriSpeech layout (the synthetic one) and other recipes (FSDD)
# reuse stages 2-6 with --data, --train, --dev, --test and --manifests.
set -euo pipefail
command="$0 $*"

stage=1
stop_stage=6
data=data/librispeech          # holds LibriSpeech/<subset>/ (downloads go here)
train="train-clean-100"        # comma-separated training subsets
dev="dev-clean"
test="dev-clean,dev-other,test-clean,test-other"
config=recipes/librispeech/conf/train_clean_100.yaml
exp=exp/librispeech_100
manifests=""                   # default: EXP/manifests
nproc=1
device=auto
search_args=()                 # --beam / --ctc-weight; default: the config's decoding section
groups=""                      # --groups FILE: a "speaker group" table; RESULTS.md gets a row per group
batch_size=32
asr=${ASR:-.venv/bin/asr}
train_args=()

while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage) stop_stage=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --train) train=$2; shift 2 ;;
        --dev) dev=$2; shift 2 ;;
        --test) test=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --exp) exp=$2; shift 2 ;;
        --manifests) manifests=$2; shift 2 ;;
        --nproc|--ngpu) nproc=$2; shift 2 ;;
        --device) device=$2; shift 2 ;;
        --beam|--ctc-weight) search_args+=("$1" "$2"); shift 2 ;;
        --batch-size) batch_size=$2; shift 2 ;;
        --groups) groups=$2; shift 2 ;;
        --set) train_args+=(--set "$2"); shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
manifests=${manifests:-$exp/manifests}
mkdir -p "$exp/.done"

# run_stage N NAME: true if stage N is selected and not done yet
run_stage() {
    [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ] || return 1
    if [ -f "$exp/.done/$1" ]; then echo "== stage $1 ($2): done already"; return 1; fi
    echo "== stage $1: $2"
}
finish() { touch "$exp/.done/$1"; }

if run_stage 1 "download"; then
    mkdir -p "$data"
    for subset in $(echo "$train,$dev,$test" | tr ',' '\n' | sort -u); do
        if [ -f "$data/LibriSpeech/$subset/.complete" ]; then continue; fi
        wget --continue --progress=dot:giga -P "$data" "https://www.openslr.org/resources/12/$subset.tar.gz"
        tar -xzf "$data/$subset.tar.gz" -C "$data"
        touch "$data/LibriSpeech/$subset/.complete"
    done
    finish 1
fi

if run_stage 2 "prepare manifests"; then
    all=$(echo "$train,$dev,$test" | tr ',' '\n' | sort -u | paste -sd,)
    "$asr" prepare librispeech "$data" --subsets "$all" --out "$manifests"
    for subset in $(echo "$train" | tr ',' ' '); do cat "$manifests/$subset.jsonl"; done > "$manifests/train.jsonl.tmp"
    mv "$manifests/train.jsonl.tmp" "$manifests/train.jsonl"
    finish 2
fi

if run_stage 3 "normalisation statistics"; then
    "$asr" stats "$manifests/train.jsonl" --out "$manifests/cmvn.json" --config "$config"
    finish 3
fi

if run_stage 4 "train"; then
    args=(train --config "$config" --out "$exp" --device "$device"
          --set "data.train=$manifests/train.jsonl" --set "data.dev=$manifests/$dev.jsonl"
          --set "data.stats=$manifests/cmvn.json" "${train_args[@]}")
    if [ "$nproc" -gt 1 ]; then
        OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$(dirname "$asr")/torchrun" --standalone --nproc_per_node="$nproc" \
            -m asr "${args[@]}"
    else
        "$asr" "${args[@]}"
    fi
    finish 4
fi

if run_stage 5 "average the best checkpoints"; then
    "$asr" average "$exp" --out "$exp/model"
    finish 5
fi

if run_stage 6 "evaluate"; then
    {
        echo "# Results: $exp"
        echo
        echo "Model: \`$exp/model\`; $(date -u +%Y-%m-%d). Command: \`$command\`."
        echo
        echo "| test set | utterances | words | WER % | CER % | sub | del | ins | insertion rate % | RTF | search |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|"
    } > "$exp/RESULTS.md.tmp"
    for subset in $(echo "$test" | tr ',' ' '); do
        "$asr" evaluate --model "$exp/model" --manifest "$manifests/$subset.jsonl" --out "$exp/eval/$subset" \
            "${search_args[@]}" --batch-size "$batch_size" --device "$device" ${groups:+--groups "$groups"}
        "$(dirname "$asr")/python" - "$subset" "$exp/eval/$subset/summary.json" >> "$exp/RESULTS.md.tmp" <<'PY'
import json, sys
s = json.load(open(sys.argv[2]))
search = f"beam {s['beam']}, CTC weight {s['ctc_weight']:g}, LM weight {s.get('lm_weight', 0):g}"
for name, g in [(sys.argv[1], s)] + [(f"{sys.argv[1]}: {k}", v) for k, v in s.get("groups", {}).items()]:
    print(f"| {name} | {g['utterances']} | {g['words']} | {g['wer']:.2f} | {g['cer']:.2f} | "
          f"{g['substitutions']} | {g['deletions']} | {g['insertions']} | {100 * g['insertions'] / g['words']:.2f} | "
          f"{s['rtf']:.4f} | {search} |")
PY
    done
    mv "$exp/RESULTS.md.tmp" "$exp/RESULTS.md"
    finish 6
fi
if [ "$stop_stage" -ge 6 ] && [ -f "$exp/RESULTS.md" ]; then
    cat "$exp/RESULTS.md"
fi
