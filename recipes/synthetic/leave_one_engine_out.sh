#!/usr/bin/env bash
# Leave one engine out: how well a model trained on the voices of two text-to-speech engines
# recognises a third engine it never heard; the project's measure of generalisation to unseen
# voices. For each engine held out, recipes/synthetic/run.sh trains on the two others and
# evaluates on their held-out voices and on the held-out engine; then the table EXP/RESULTS.md
# (rows: the training engines; columns: the test sets) that recipes/synthetic/RESULTS.md quotes.
#
#   recipes/synthetic/leave_one_engine_out.sh [--data DIR] [--exp DIR] [--train-utterances N] [--nproc N] ...
#
# Other options go to recipes/synthetic/run.sh (--config, --stage, --stop-stage, --set ...).
set -euo pipefail

data=data/engines
exp=exp/leave_one_engine_out
engines=(espeak flite festival)
train_utterances=2000
asr=${ASR:-.venv/bin/asr}
. "$(dirname "$0")/../parse_options.sh" "$@"

for held in "${engines[@]}"; do
    others=$(printf '%s\n' "${engines[@]}" | grep -vx "$held" | paste -sd,)
    echo "== train on $others, test on $held"
    bash "$(dirname "$0")/run.sh" --data "$data" --exp "$exp/without_$held" --engines "$others" \
        --held-out-engine "$held" --train-utterances "$train_utterances" --stop-stage 6 "${passthrough[@]}"
done

"$(dirname "$asr")/python" - "$exp" "${engines[@]}" > "$exp/RESULTS.md" <<'PY'
import json, pathlib, sys
exp, engines = pathlib.Path(sys.argv[1]), sys.argv[2:]
print("| trained on | held-out engine | WER % | insertion rate % | CER % | held-out voices of the training engines: WER % | insertion rate % |")
print("|---|---|---|---|---|---|---|")
for held in engines:
    run = exp / f"without_{held}" / "eval"
    engine, voices = (json.loads((run / name / "summary.json").read_text()) for name in (held, "test"))
    trained = " + ".join(e for e in engines if e != held)
    print(f"| {trained} | {held} | {engine['wer']:.2f} | {100 * engine['insertions'] / engine['words']:.2f} | "
          f"{engine['cer']:.2f} | {voices['wer']:.2f} | {100 * voices['insertions'] / voices['words']:.2f} |")
PY
cat "$exp/RESULTS.md"
