"""The time-to-accuracy report: both toolkits' dev curves and test results as JSON lines, the
plot of dev WER against training minutes, and the markdown table of benchmarks/README.md.

    .venv/bin/python benchmarks/time_to_accuracy/report.py --exp EXP --minutes 30 --out benchmarks/results

Reads what run.sh leaves in EXP for each of our runs (EXP/NAME.started, the epoch second its timed
stages began): its TensorBoard `dev/wer` events (their wall times give the minutes) and
EXP/NAME/eval/*/summary.json;
and each SpeechBrain run's curve.jsonl, search.jsonl and results.jsonl
(EXP/speechbrain-<settings>[-sentence]). The goals are read against the SpeechBrain run with the
lowest dev WER at the budget: the one its own dev set would choose.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from dataclasses import fields
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from asr.scoring import CorpusScore

SPEECHBRAIN = {"librispeech": "SpeechBrain, LibriSpeech recipe", "small": "SpeechBrain, small-corpus recipe scaled"}
"""speechbrain_las.py's --settings; a run of --norm sentence is EXP/speechbrain-<settings>-sentence."""
TESTS = {
    "flite_dev": "dev: flite's dev voice, rms (settings are chosen here)",
    "test": "held-out voices (espeak-ng + festival)",
    "test/espeak": "- espeak-ng",
    "test/festival": "- festival",
    "flite": "flite's test voice, awb (neither heard flite nor its talker)",
}


def label(name: str) -> str:
    """How a run is named in the table and the plot."""
    if name == "ours":
        return "ours (make demo's config)"
    settings, _, norm = name.partition("-")
    if settings in SPEECHBRAIN:
        return SPEECHBRAIN[settings] + (f", {norm} normalisation" if norm else "")
    return name


def speechbrain_runs(exp: Path) -> list[str]:
    """SpeechBrain's runs in EXP with their test results: "small" for EXP/speechbrain-small."""
    return sorted(path.parent.name.removeprefix("speechbrain-") for path in exp.glob("speechbrain-*/results.jsonl"))


def our_runs(exp: Path) -> list[str]:
    """Our runs in EXP, "ours" first: those with a NAME.started file and a validation."""
    names = [path.name.removesuffix(".started") for path in exp.glob("*.started")]
    names = [name for name in names if (exp / name / "validations.json").is_file()]
    return sorted(names, key=lambda name: (name != "ours", name))


def evaluated(exp: Path, name: str) -> bool:
    """Whether our run NAME has its test results (a run stopped early has a curve only)."""
    return (exp / name / "eval" / "flite" / "summary.json").is_file()


def our_curve(exp: Path, name: str = "ours") -> list[dict]:
    """A line per validation of our run NAME: minutes since NAME.started, step, dev WER and CER."""
    started = float((exp / f"{name}.started").read_text())
    events = EventAccumulator(str(exp / name / "tensorboard"))
    events.Reload()
    cer = {e.step: e.value for e in events.Scalars("dev/cer")}
    return [
        {"toolkit": "ours", "run": name, "step": e.step, "minutes": round((e.wall_time - started) / 60, 3),
         "dev_wer": round(e.value, 2), "dev_cer": round(cer[e.step], 2)}
        for e in events.Scalars("dev/wer")
    ]  # fmt: skip


def our_results(exp: Path, run: str = "ours") -> list[dict]:
    """A line per test set and engine from our run's evaluation summaries (recipe stage 6)."""
    rows = []
    for name in ("flite_dev", "test", "flite"):
        if not (exp / run / "eval" / name / "summary.json").is_file():
            continue  # runs made before flite had a dev voice
        summary = json.loads((exp / run / "eval" / name / "summary.json").read_text())
        search = summary["search"]
        sets = {name: summary} | {f"{name}/{group}": value for group, value in summary.get("groups", {}).items()}
        for label, value in sets.items():
            corpus = CorpusScore(
                **{field.name: value[field.name] for field in fields(CorpusScore) if field.name in value}
            )
            rows.append({"toolkit": "ours", "run": run, "test": label, "beam": search["beam"],
                         "ctc_weight": search["ctc_weight"], "insertion_rate": round(corpus.insertion_rate, 2),
                         **corpus.to_dict()})  # fmt: skip
    return rows


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def minutes_to_reach(curve: list[dict], wer: float) -> float | None:
    """The first validation's minutes at which `curve` is at or under `wer`; None if never."""
    return next((point["minutes"] for point in curve if point["dev_wer"] <= wer), None)


def last_within(curve: list[dict], minutes: float) -> dict:
    """The last validation made within the budget (the first one if none was)."""
    within = [point for point in curve if point["minutes"] <= minutes]
    return within[-1] if within else curve[0]


def plot(curves: dict[str, list[dict]], minutes: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for name, curve in curves.items():
        axes.plot([p["minutes"] for p in curve], [p["dev_wer"] for p in curve], marker="o", label=name)
    axes.axvline(minutes, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("training minutes (wall clock, 2 CPU cores)")
    axes.set_ylabel("dev WER % (greedy, 100 utterances)")
    axes.set_ylim(0, max(120, 10 + max(p["dev_wer"] for curve in curves.values() for p in curve)))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def table(results: list[dict], runs: list[str], against: str) -> str:
    """Markdown rows: test set | each run's WER (CER, ins.) | the first run's WER / `against`'s."""
    by = {(r["run"], r["test"]): r for r in results}
    header = " | ".join(f"{label(name)} WER % (CER, ins.)" for name in runs)
    lines = [
        f"| set | {header} | {label(runs[0])} / {label(against)} |",
        "|---" * (len(runs) + 2) + "|",
    ]
    for test, title in TESTS.items():
        rows = [by.get((name, test)) for name in runs]
        if None in rows:
            continue
        cells = " | ".join(f"{r['wer']:.2f} ({r['cer']:.2f}, {r['insertion_rate']:.2f})" for r in rows)
        lines.append(f"| {title} | {cells} | {rows[0]['wer'] / by[(against, test)]['wer']:.2f} |")
    return "\n".join(lines)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--stem", help="the files' name (default: time_to_accuracy_DATE; another run that day needs its own)"
    )
    args = parser.parse_args()
    ours = our_runs(args.exp)
    runs = speechbrain_runs(args.exp)
    curves = {name: our_curve(args.exp, name) for name in ours}
    curves |= {name: read_lines(args.exp / f"speechbrain-{name}" / "curve.jsonl") for name in runs}
    tested = [name for name in ours if evaluated(args.exp, name)]
    results = [row for name in tested for row in our_results(args.exp, name)]
    for name in runs:
        results += [{"run": name, **row} for row in read_lines(args.exp / f"speechbrain-{name}" / "results.jsonl")]
    flags = Path("/proc/cpuinfo").read_text()
    machine = {"cpu": cpu_name(), "avx512f": " avx512f" in flags, "cores": os.cpu_count(),
               "torch": torch.__version__, "date": datetime.date.today().isoformat()}  # fmt: skip
    against = min(runs, key=lambda name: last_within(curves[name], args.minutes)["dev_wer"])
    sb_end = last_within(curves[against], args.minutes)
    summary = {"kind": "summary", "budget_minutes": args.minutes, "speechbrain_settings": against,
               "speechbrain_dev_wer_at_budget": sb_end["dev_wer"],
               "speechbrain_minutes_at_budget": sb_end["minutes"]}  # fmt: skip
    for name in ours:
        summary[f"{name}_dev_wer_at_budget"] = last_within(curves[name], args.minutes)["dev_wer"]
        summary[f"{name}_minutes_to_speechbrain_dev_wer"] = minutes_to_reach(curves[name], sb_end["dev_wer"])
    stem = args.stem or f"time_to_accuracy_{machine['date']}"
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [{"kind": "machine", **machine}, summary]
    lines += [{"kind": "dev", **point} for curve in curves.values() for point in curve]
    lines += [{"kind": "test", **row} for row in results]
    for name in runs:
        searches = read_lines(args.exp / f"speechbrain-{name}" / "search.jsonl")
        lines += [{"kind": "speechbrain_search", "settings": name, **row} for row in searches]
    (args.out / f"{stem}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    plot({label(name): curve for name, curve in curves.items()}, args.minutes, args.out / f"{stem}.png")
    print(json.dumps(summary))
    print(table(results, tested + runs, against))
    return 0


if __name__ == "__main__":
    sys.exit(main())
