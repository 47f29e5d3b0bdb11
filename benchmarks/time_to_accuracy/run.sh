#!/usr/bin/env bash
# Time to accuracy next to SpeechBrain: make demo's corpus; our LAS and SpeechBrain's LibriSpeech
# sequence-to-sequence recipe (speechbrain_las.py) each trained for the same wall-clock budget on
# this machine, one after the other with nothing else running, each validating on the same dev
# utterances as it goes (100, equal parts of each training engine's dev voices, drawn across
# speakers); then both decode flite's dev voice (an engine neither heard: where settings that
# claim to help on unheard voices are chosen) and the test sets (held-out voices of the training
# engines, and flite's test voice) once, with beam 4 and their own search chosen on dev.
#
# One budget rule for both: an epoch starts only while the longest epoch so far still fits in
# what is left of --minutes (ours: `asr train --set max_minutes=...`, counted after the timed
# normalisation statistics; a run whose time runs out mid-epoch stops after the step in hand),
# and each tests its best checkpoint by dev WER (ours: average_best=1; SpeechBrain's
# Checkpointer, min_key WER). Both final models stay under EXP (EXP/NAME/model;
# EXP/speechbrain-*/save) and are made again by the stage that made them.
#
#   bash benchmarks/time_to_accuracy/run.sh [--exp DIR] [--minutes 30] [--epochs N] [--stage N] [--stop-stage N]
#                                           [--ours NAME --ours-set KEY=VALUE[,KEY=VALUE]] [--speechbrain-settings S,S]
#                                           [--speechbrain-norms global,sentence]
#
#   0 the corpus: recipes/synthetic/run.sh with make demo's arguments, its stages 0-2 (synthesis,
#     manifests)
#   1 ours (EXP/ours, or EXP/NAME with --ours NAME: a variant with --ours-set's training
#     settings, on a copy of EXP/ours's manifests): the recipe's stages 3-4, timed (normalisation
#     statistics, inside the budget as SpeechBrain's first-epoch normalisation is inside its own;
#     `asr train` with the demo's config, max_minutes = what the statistics left of the budget,
#     and --epochs, the length of the cosine schedule, sized from a measured 3.7 minutes an epoch
#     (AVX-512) so that it ends within the budget; a slower machine is stopped by the budget)
#   2 ours: the recipe's stages 5-6 (average, evaluate the test sets; EXP/ours/RESULTS.md)
#   3 SpeechBrain: speechbrain_las.py in the peers' environment (../shared/bench/install_peers.sh,
#     then `pip install -e .` of this project into it), a run for each of --speechbrain-settings
#     (its LibriSpeech recipe's optimiser, its small-corpus (TIMIT) recipe's scaled) and each of
#     --speechbrain-norms (global statistics, or each utterance's own: the choice ours has);
#     training stops when the next epoch would pass the budget; the report compares ours with
#     the run of the lowest dev WER at the budget
#   4 the report: JSON lines in benchmarks/results/, the plot, the table (report.py)
set -euo pipefail

exp=exp/time_to_accuracy
minutes=30
epochs=7                       # ours' schedule: about 3.7 minutes an epoch with its validation (AVX-512): 7 in 30
ours=ours                      # the name of our run under EXP
ours_set=""                    # its settings that differ from the demo's config, e.g. data.max_frames=1500
speechbrain_settings=small     # speechbrain_las.py's --settings (also: librispeech), one run each
speechbrain_norms=global,sentence        # and its --norm: one run each
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
    overrides=(--set "epochs=$epochs" --set average_best=1)
    for setting in $(echo "$ours_set" | tr ',' ' '); do overrides+=(--set "$setting"); done
    date +%s.%N > "$exp/$ours.started"
    ASR=.venv/bin/asr bash recipes/synthetic/run.sh "${demo[@]}" --stage 3 --stop-stage 3
    left=$(.venv/bin/python -c "import sys, time; print(float(sys.argv[1]) - (time.time() - float(sys.argv[2])) / 60)" \
        "$minutes" "$(cat "$exp/$ours.started")")
    ASR=.venv/bin/asr bash recipes/synthetic/run.sh "${demo[@]}" --stage 4 --stop-stage 4 "${overrides[@]}" \
        --set "max_minutes=$left"
fi

if selected 2; then
    ASR=.venv/bin/asr bash recipes/synthetic/run.sh "${demo[@]}" --stage 5 --stop-stage 6
fi

if selected 3; then
    [ -x "$peers/bin/python" ] || { echo "run.sh: no $peers; run ../shared/bench/install_peers.sh, then $peers/bin/pip install -e ." >&2; exit 2; }
    # one process of two threads: SpeechBrain's way on a CPU
    devs=$(for engine in espeak festival; do realpath "$manifests/$engine/dev.jsonl"; done | paste -sd,)
    for settings in $(echo "$speechbrain_settings" | tr ',' ' '); do
        for norm in $(echo "$speechbrain_norms" | tr ',' ' '); do
            run=speechbrain-$settings
            [ "$norm" = global ] || run+="-$norm"
            "$peers/bin/python" "$here/speechbrain_las.py" --manifests "$(realpath "$manifests")" --dev "$devs" \
                --settings "$settings" --norm "$norm" --out "$exp/$run" --minutes "$minutes" \
                --tests flite_dev,test,flite --groups "$manifests/engines.txt" --threads 2
        done
    done
fi

if selected 4; then
    .venv/bin/python "$here/report.py" --exp "$exp" --minutes "$minutes" --out benchmarks/results
fi
