#!/usr/bin/env bash
# The synthetic recipe in other languages: for each of --languages, espeak-ng's voices of that
# language read its Debian fortunes (fortunes-de, fortunes-es, fortunes-zh; English: the English
# texts) into a corpus of its own, with voices and sentences held out for dev and test; a LAS is
# trained on it for the same number of steps (conf/multilingual.yaml: 8 epochs of 1,500 utterances) and tested
# on the held-out voices; the table of every language is printed and written to EXP/RESULTS.md.
# `make demo-multilingual` runs it. German and Spanish use the unicode normaliser (umlauts, ß, ñ,
# accents kept), Mandarin the same without spaces, scored by CER; English its own normaliser.
#
#   recipes/synthetic/multilingual.sh [--languages en,de,es,zh] [--data DIR] [--exp DIR] [--config FILE]
#                                     [--train-utterances N] [--stage N] [--stop-stage N] [--nproc N]
#
#   0 synthesise DIR/<language> (espeak-ng only: the other engines speak English alone)
#   1 manifests EXP/<language>/manifests/{train,dev,test}.jsonl (prepare's notes by the language's normaliser)
#   3-6 the LibriSpeech recipe's stages for each language: statistics, train, average, evaluate test
#   7 the table: EXP/RESULTS.md
set -euo pipefail
command="$0 $*"

languages=en,de,es,zh
data=data/multilingual
exp=exp/multilingual
config=recipes/synthetic/conf/multilingual.yaml
train_utterances=1500
dev_utterances=100
test_utterances=200
stage=0
stop_stage=7
nproc=2
asr=${ASR:-.venv/bin/asr}
. "$(dirname "$0")/../parse_options.sh" "$@"
selected() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
read -r -a chosen <<< "$(echo "$languages" | tr ',' ' ')"

# per language: its text sources, the closed vocabulary (words; Mandarin: characters) and the normaliser
texts() { case "$1" in en) echo bible,wordnet,fortunes ;; *) echo "fortunes-$1" ;; esac; }
vocabulary() { case "$1" in zh) echo 1000 ;; *) echo 2000 ;; esac; }
normalizer() {
    case "$1" in
        en) echo "--normalizer english" ;;
        zh) echo "--normalizer unicode --no-spaces" ;;
        *) echo "--normalizer unicode" ;;
    esac
}
text_settings() {
    case "$1" in
        en) echo "" ;;
        zh) echo "--set text.normalizer=unicode --set text.spaces=false --set text.metric=cer" ;;
        *) echo "--set text.normalizer=unicode" ;;
    esac
}

for language in "${chosen[@]}"; do
    case "$language" in en|de|es|zh) ;; *) echo "$(basename "$0"): unknown language $language (en, de, es, zh)" >&2; exit 2 ;; esac
done

for language in "${chosen[@]}"; do
    manifests=$exp/$language/manifests
    if selected 0; then
        echo "== stage 0: synthesise $language"
        "$asr" synthesize --out "$data/$language" --language "$language" --engines espeak \
            --texts "$(texts "$language")" --vocabulary "$(vocabulary "$language")" \
            --train-utterances "$train_utterances" --dev-utterances "$dev_utterances" \
            --test-utterances "$test_utterances" --jobs "$(nproc)"
    fi
    if selected 1; then
        echo "== stage 1: manifests of $language"
        # shellcheck disable=SC2046  # the normaliser's options are words
        "$asr" prepare librispeech "$data/$language" --subsets train,dev,test --out "$manifests" $(normalizer "$language")
    fi
    if [ "$stop_stage" -ge 3 ] && [ "$stage" -le 6 ]; then
        # shellcheck disable=SC2046
        "$(dirname "$0")/../librispeech/run.sh" --stage "$(( stage > 3 ? stage : 3 ))" --stop-stage "$(( stop_stage < 6 ? stop_stage : 6 ))" \
            --exp "$exp/$language" --manifests "$manifests" --dev dev --test test --nproc "$nproc" \
            --config "$config" $(text_settings "$language") "${passthrough[@]}"
    fi
done

if selected 7; then
    echo "== stage 7: the table"
    "$(dirname "$asr")/python" "$(dirname "$0")/local/language_table.py" --command "$command" \
        "${chosen[@]/#/$exp/}" > "$exp/RESULTS.md.tmp"
    mv "$exp/RESULTS.md.tmp" "$exp/RESULTS.md"
    cat "$exp/RESULTS.md"
fi
