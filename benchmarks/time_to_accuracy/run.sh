#!/usr/bin/env bash
# Time to accuracy next to SpeechBrain: make demo's corpus; our LAS and SpeechBrain's LibriSpeech
# sequence-to-sequence recipe (speechbrain_las.py) each trained for the same wall-clock budget on
# this machine, one after the other with nothing else running, each validating on the same dev
# utterances as it goes; then both decode the same test sets (held-out voices of the training
# engines, and flite, an engine neither heard) with beam 4 and their own search chosen on dev.
#
#   bash benchmarks/time_to_accuracy/run.sh [--exp DIR] [--minutes 30] [--epochs N] [--stage N] [--stop-stage N]
#                                           [--ours NAME --ours-set KEY=VALUE[,KEY=VALUE]] [--speechbrain-settings S,S]
#
#   0 the corpus: recipes/synthetic/run.sh with make demo's arguments, its stages 0-2 (synthesis,
#     manifests)
#   1 ours (EXP/ours, or EXP/NAME with --ours NAME: a variant with --ours-set's training
#     settings, on a copy of EXP/ours's manifests): the recipe's stages 3-4, timed (normalisation
#     statistics, inside the budget as SpeechBrain's first-epoch normalisation is inside its own;
#     `asr train` with the demo's config and --epochs, sized so that the cosine schedule ends
#     within the budget)
#   2 ours: the recipe's stages 5-6 (average, evaluate the test sets; EXP/ours/RESULTS.md)
#   3 SpeechBrain: speechbrain_las.py in the peers' environment (../shared/bench/install_peers.sh,
#     then `pip install -e .` of this project into it), once with its LibriSpeech recipe's optimiser
#     and once with its small-corpus (TIMIT) recipe's scaled (--speechbrain-settings); training
#     stops when the next epoch would pass the budget
#   4 the report: JSON lines in benchmarks/results/, the plot, the table (report.py)
set -euo pipefail

exp=exp/time_to_accuracy
minutes=30
epochs=7                       # ours: about 3.7 minutes an epoch with its validation (AVX-512), so 7 end within 30
ours=ours                      # the name of our run under EXP
ours_set=""                    # its settings that differ from the demo's config, e.g. data.max_frames=1500
speechbrain_settings=librispeech,small   # speechbrain_las.py's --settings, one 30-minute run each
stage=0
stop_stage=4
peers=${XDG_CACHE_HOME:-$HOME/.cache}/peers-venv
. "$(dirname "$0")/../../recipes/parse_options.sh" "$@"
[ ${#passthrough[@]} -eq 0 ] || { echo "run.sh: unknown option ${passthrough[0]} (see --help)" >&2; exit 2; }
selected() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
here=$(dirname "$0")
demo=(--data data/demo --exp "$exp/$ours" --engines espeak,festival --held-out-engine flite --vocabulary 1000
      --train-utterances 2000 --dev-utterances 100 --config recipes/synthetic/conf/train.yaml
      --speechocean ../shared/data/speechocean762)
manifests=$exp/ours/manifests

if selected 0; then
    ASR=.venv/bin/asr bash recipes/synthetic/run.sh "${demo[@]}" --exp "$exp/ours" --stop-stage 2
fi

if selected 1; then
    if [ ! -d "$exp/$ours/manifests" ]; then
        mkdir -p "$exp/$ours"
        cp -r "$manifests" "$exp/$ours/manifests"   # the statistics (stage 3) are made again, timed
    fi
    overrides=(--set "epochs=$epochs")
    for setting in $(echo "$ours_set" | tr ',' ' '); do overrides+=(--set "$setting"); done
    date +%s.%N > "$exp/$ours.started"
    ASR=.venv/bin/asr bash recipes/synthetic/run.sh "${demo[@]}" --stage 3 --stop-stage 4 "${overrides[@]}"
fi

if selected 2; then
    ASR=.venv/bin/asr bash recipes/synthetic/run.sh "${demo[@]}" --stage 5 --stop-stage 6
fi

if selected 3; then
    [ -x "$peers/bin/python" ] || { echo "run.sh: no $peers; run ../shared/bench/install_peers.sh, then $peers/bin/pip install -e ." >&2; exit 2; }
    # one process of two threads: SpeechBrain's way on a CPU
    for settings in $(echo "$speechbrain_settings" | tr ',' ' '); do
        "$peers/bin/python" "$here/speechbrain_las.py" --manifests "$(realpath "$manifests")" --settings "$settings" \
            --out "$exp/speechbrain-$settings" --minutes "$minutes" --tests test,flite --groups "$manifests/engines.txt" --threads 2
    done
fi

if selected 4; then
    .venv/bin/python "$here/report.py" --exp "$exp" --minutes "$minutes" --out benchmarks/results
fi
