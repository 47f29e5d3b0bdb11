#!/usr/bin/env bash
# LibriSpeech recipe: numbered stages, each re-runnable (done markers) and skippable.
#
#   recipes/librispeech/run.sh [--stage N] [--stop-stage N] [--data DIR] [--config FILE] [--exp DIR] [--nproc N] ...
#
# --nproc N trains with N processes (torchrun, distributed data parallel): one per GPU,
# or on a CPU-only machine one per core (each with one thread).
#
#   1 download the chosen subsets from openslr.org (resumable; skips what is there)
#   2 prepare manifests          3 normalisation statistics (vocabulary: the fixed character set)
#   4 train (resumes)            5 average the best checkpoints into EXP/model
#   6 evaluate the test sets (and the --dev-sets, rows marked "dev") and write EXP/RESULTS.md
#   7 download the LibriSpeech LM corpus (openslr.org/11, 800 M words) and train a character LM
#     (recipes/librispeech/conf/lm.yaml, a GPU) into EXP/lm; skipped when --lm is given
#   8 choose the LM weight on the dev set (--lm-weights), then evaluate the test sets with the LM
#
# --beam B and --ctc-weight W override the search of the config's decoding section in stages 6
# and 8; --max-seconds S cuts utterances longer than S at pauses (default inf: every utterance is
# decoded whole, as ESPnet and SpeechBrain score LibriSpeech; "model": the longest the model was
# trained on, asr evaluate's own default); each RESULTS.md row says which, and the seconds judged silent; --groups FILE (speaker group) adds a row per group to RESULTS.md; --lm DIR uses an LM
# trained elsewhere.
#
# Other corpora in the LibriSpeech layout (the synthetic one) and other recipes (FSDD)
# reuse stages 2-6 with --data, --train, --dev, --test and --manifests.
set -euo pipefail
command="$0 $*"

stage=1
stop_stage=6
lm=""                          # --lm DIR: an LM directory (default with stage 7: EXP/lm/model)
lm_weights="0,0.1,0.2,0.3,0.4,0.5"   # 0 among them: dev decides whether the LM helps at all
lm_config=recipes/librispeech/conf/lm.yaml
data=data/librispeech          # holds LibriSpeech/<subset>/ (downloads go here)
train="train-clean-100"        # comma-separated training subsets
dev="dev-clean"
test="dev-clean,dev-other,test-clean,test-other"
dev_sets=""                    # manifests decoded beside the tests in stage 6, rows marked dev: where settings are chosen
config=recipes/librispeech/conf/train_clean_100.yaml
exp=exp/librispeech_100
manifests=""                   # default: EXP/manifests
nproc=1
device=auto
search_args=()                 # --beam / --ctc-weight; default: the config's decoding section
groups=""                      # --groups FILE: a "speaker group" table; RESULTS.md gets a row per group
batch_size=32
max_seconds=inf                # --max-seconds: see above
asr=${ASR:-.venv/bin/asr}
train_args=()

. "$(dirname "$0")/../parse_options.sh" "$@"
set -- "${passthrough[@]}"  # the options that name no variable: those with a meaning of their own
while [ $# -gt 0 ]; do
    case "$1" in
        --beam|--ctc-weight) search_args+=("$1" "$2"); shift 2 ;;
        --set) train_args+=(--set "$2"); shift 2 ;;
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

# evaluate SUBSET OUT [ARGS...]: decode one manifest; append its RESULTS.md rows (and its groups') to EXP/RESULTS.md.tmp,
# named SUBSET, or "SUBSET (dev)" while $row_kind is dev
row_kind=test
evaluate() {
    local subset=$1 out=$2
    shift 2
    local cut=(--max-seconds "$max_seconds")
    [ "$max_seconds" != model ] || cut=()
    "$asr" evaluate --model "$exp/model" --manifest "$manifests/$subset.jsonl" --out "$out" "${cut[@]}" \
        "${search_args[@]}" --batch-size "$batch_size" --device "$device" ${groups:+--groups "$groups"} "$@"
    local name=$subset
    [ "$row_kind" = test ] || name="$subset ($row_kind)"
    "$(dirname "$asr")/python" - "$name" "$out/summary.json" >> "$exp/RESULTS.md.tmp" <<'PY'
import dataclasses, json, sys
from asr.decoding.config import SearchConfig
s = json.load(open(sys.argv[2]))
setting = lambda k, v: f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
# beam and the weights, then each setting that is not SearchConfig's default (summary.json holds them all)
search = f"beam {s['search']['beam']}, CTC weight {s['search']['ctc_weight']:g}, LM weight {s['search']['lm_weight']:g}"
defaults = {f.name: f.default for f in dataclasses.fields(SearchConfig)}
rest = [setting(k, v) for k, v in s["search"].items() if k not in ("beam", "ctc_weight", "lm_weight") and v != defaults.get(k)]
search += "".join(f", {item}" for item in rest)
cut = s.get("cut_at_pauses", {})
if cut.get("longer_than_seconds") is None:
    search += "; whole utterances"
else:  # utterances longer than this were decoded in pieces cut at pauses
    search += (f"; {cut['utterances']} over {cut['longer_than_seconds']:g} s cut at pauses, "
               f"{cut['seconds_judged_silent']:g} s judged silent")
for name, g in [(sys.argv[1], s)] + [(f"{sys.argv[1]}: {k}", v) for k, v in s.get("groups", {}).items()]:
    words, wer, cer, insertion_rate = g["words"], f"{g['wer']:.2f}", f"{g['cer']:.2f}", 100 * g["insertions"] / g["words"]
    if g.get("metric") == "cer":  # the primary figure: in bold, insertions per hundred reference characters
        cer, insertion_rate = f"**{cer}**", 100 * g["char_insertions"] / g["chars"]
    if not s.get("text", {}).get("spaces", True):  # no word is written apart: a "word" is a sentence
        words = wer = "-"
    print(f"| {name} | {g['utterances']} | {words} | {wer} | {cer} | "
          f"{g['substitutions']} | {g['deletions']} | {g['insertions']} | {insertion_rate:.2f} | "
          f"{s['rtf']:.4f} | {search} |")
PY
}
results_header() {
    {
        echo "# Results: $exp"
        echo
        echo "Model: \`$exp/model\`; $(date -u +%Y-%m-%d). Command: \`$command\`."
        echo
        echo "WER is the primary figure, unless the CER is in bold: a model whose text.metric is cer (a language"
        echo "whose words are not written apart), whose insertion rate is then per hundred reference characters;"
        echo "a model whose normaliser removes spaces (text.spaces false) has no words, and no WER (-)."
        echo
        echo "| set | utterances | words | WER % | CER % | sub | del | ins | insertion rate % | RTF | search |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|"
    } > "$exp/RESULTS.md.tmp"
}

if run_stage 6 "evaluate"; then
    results_header
    row_kind=dev
    for subset in $(echo "$dev_sets" | tr ',' ' '); do
        evaluate "$subset" "$exp/eval/$subset"
    done
    row_kind=test
    for subset in $(echo "$test" | tr ',' ' '); do
        evaluate "$subset" "$exp/eval/$subset"
    done
    mv "$exp/RESULTS.md.tmp" "$exp/RESULTS.md"
    finish 6
fi

if [ -z "$lm" ] && run_stage 7 "language model"; then
    if [ ! -f "$data/librispeech-lm-norm.txt" ]; then
        wget --continue -P "$data" https://www.openslr.org/resources/11/librispeech-lm-norm.txt.gz
        gunzip -k "$data/librispeech-lm-norm.txt.gz"
    fi
    "$asr" lm text --transcripts "$manifests/$dev.jsonl" --out "$exp/lm-dev.txt"
    "$asr" lm train --config "$lm_config" --text "$data/librispeech-lm-norm.txt" --dev-text "$exp/lm-dev.txt" \
        --out "$exp/lm" --device "$device"
    finish 7
fi
lm=${lm:-$exp/lm/model}

if run_stage 8 "LM weight on $dev, then the test sets with the LM"; then
    cp "$exp/RESULTS.md" "$exp/RESULTS.md.tmp"
    for weight in $(echo "$lm_weights" | tr ',' ' '); do
        "$asr" evaluate --model "$exp/model" --manifest "$manifests/$dev.jsonl" --out "$exp/eval/lm/$dev-$weight" \
            "${search_args[@]}" --batch-size "$batch_size" --device "$device" --lm "$lm" --lm-weight "$weight" > /dev/null
    done
    chosen=$("$(dirname "$asr")/python" - "$exp/eval/lm" "$dev" "$lm_weights" <<'PY'
import json, pathlib, sys
folder, dev, weights = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
wer = {w: json.loads((folder / f"{dev}-{w}" / "summary.json").read_text())["wer"] for w in weights}
print(min(weights, key=lambda w: (wer[w], float(w))))
PY
)
    {
        echo
        echo "With the LM \`$lm\`: weight $chosen, chosen on $dev among $lm_weights (dev WER, in order:" \
            "$(for w in $(echo "$lm_weights" | tr ',' ' '); do
                "$(dirname "$asr")/python" -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['wer']:.2f}\")" \
                    "$exp/eval/lm/$dev-$w/summary.json"; done | paste -sd' ')). Test sets with the LM:"
        echo
        echo "| test set | utterances | words | WER % | CER % | sub | del | ins | insertion rate % | RTF | search |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|"
    } >> "$exp/RESULTS.md.tmp"
    for subset in $(echo "$test" | tr ',' ' '); do
        evaluate "$subset" "$exp/eval/lm/$subset" --lm "$lm" --lm-weight "$chosen"
    done
    mv "$exp/RESULTS.md.tmp" "$exp/RESULTS.md"
    finish 8
fi
if [ "$stop_stage" -ge 6 ] && [ -f "$exp/RESULTS.md" ]; then
    cat "$exp/RESULTS.md"
fi
