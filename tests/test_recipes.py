import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from asr.config import load_config
from asr.data.manifest import read_manifest
from asr.lm.training import LMTrainConfig
from asr.text import normalize
from asr.training.config import TrainConfig
from tests.conftest import FIXTURES, LIBRISPEECH
from tests.training.test_loop import TINY_MODEL

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "ASR": str(Path(sys.executable).parent / "asr")}
    return subprocess.run(["bash", str(ROOT / script), *args], capture_output=True, text=True, env=env, timeout=600)


def test_librispeech_recipe_stages_2_to_6_run_on_the_fixture_and_rerun_as_no_ops(tmp_path: Path) -> None:
    config = {"data": {"max_frames": 500, "num_workers": 0}, "model": TINY_MODEL, "epochs": 1, "plot_utterances": 1}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    args = ["--stage", "2", "--data", str(LIBRISPEECH.parent), "--train", "dev-clean", "--dev", "test-clean",
            "--test", "test-clean,dev-clean", "--config", str(tmp_path / "tiny.yaml"), "--exp", str(tmp_path / "exp"),
            "--beam", "2", "--device", "cpu"]  # fmt: skip
    first = run("recipes/librispeech/run.sh", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    results = (tmp_path / "exp" / "RESULTS.md").read_text()
    assert "| test-clean | 2 | 8 |" in results and "| dev-clean | 4 | 21 |" in results
    assert results.count("; whole utterances |") == 2  # as ESPnet and SpeechBrain score LibriSpeech
    summary = json.loads((tmp_path / "exp" / "eval" / "test-clean" / "summary.json").read_text())
    assert summary["cut_at_pauses"] == {"longer_than_seconds": None, "utterances": 0, "seconds_judged_silent": 0.0}
    assert (tmp_path / "exp" / "model" / "model.safetensors").is_file()
    again = run("recipes/librispeech/run.sh", *args)
    assert again.returncode == 0 and again.stdout.count("done already") == 5


def test_recipe_rejects_an_unknown_option() -> None:
    result = run("recipes/librispeech/run.sh", "--nonsense", "1")
    assert result.returncode == 2 and "unknown option --nonsense" in result.stderr


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("flite") is None,
    reason="needs the Debian packages espeak-ng and flite (make install)",
)
def test_synthetic_recipe_trains_on_one_engine_and_tests_on_held_out_voices_and_engine(tmp_path: Path) -> None:
    config = {"data": {"max_frames": 2000, "num_workers": 0}, "model": TINY_MODEL, "epochs": 1, "plot_utterances": 1}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    lm_config = {"data": {"max_tokens": 2000}, "model": {"embedding_dim": 8, "units": 16, "layers": 1}, "max_steps": 3}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(lm_config))
    args = ["--data", str(tmp_path / "synth"), "--exp", str(tmp_path / "exp"), "--engines", "espeak",
            "--held-out-engine", "flite", "--train-utterances", "8", "--dev-utterances", "4", "--test-utterances", "4",
            "--vocabulary", "500", "--nproc", "1", "--config", str(tmp_path / "tiny.yaml"), "--device", "cpu",
            "--speechocean", str(tmp_path / "absent"), "--train-lm", "--lm-config", str(tmp_path / "lm.yaml"),
            "--lm-weights", "0,0.5"]  # fmt: skip
    result = run("recipes/synthetic/run.sh", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    for stage in (0, 1, 2, 3, 4, 5, 6, 8, 7):
        assert f"== stage {stage}:" in result.stdout
    results = (tmp_path / "exp" / "RESULTS.md").read_text()
    assert "| test | 4 |" in results and "| flite | 4 |" in results  # held-out voices, held-out engine
    assert "| test: espeak | 4 |" in results  # a row per engine
    assert "| flite_dev (dev) | 4 |" in results  # the unseen engine's dev set, decoded to choose settings on
    assert "s cut at pauses, 0 s judged silent |" in results  # the demo cuts what is longer than it learnt
    manifests = tmp_path / "exp" / "manifests"
    flite_dev, flite_test = (read_manifest(manifests / name) for name in ("flite_dev.jsonl", "flite.jsonl"))
    assert not {u.speaker for u in flite_dev} & {u.speaker for u in flite_test}  # voices of its own each
    dev = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())["data"]["dev"]
    assert dev == [str(manifests / "espeak" / "dev.jsonl")]  # validation: each training engine's dev set
    lm_text = (tmp_path / "exp" / "lm-text.txt").read_text().splitlines()
    held_out = {normalize(u.text) for name in ("dev", "test") for u in read_manifest(manifests / f"{name}.jsonl")}
    assert lm_text and not held_out & set(lm_text)  # the LM never read a dev or test sentence
    assert "chosen on dev among 0,0.5" in results  # stage 8: the LM weight, then the test sets with it
    transcribed = result.stdout.split("== stage 7:")[1]
    assert transcribed.count("  REF: ") == transcribed.count("  HYP: ") == 2  # a held-out voice and engine
    assert result.stdout.rstrip().endswith("|")  # the WER table comes last


def speechocean_like(root: Path) -> Path:
    """root/{train,test}/ Kaldi tables as speechocean762 lays them out (wav.scp relative to root,
    spk2age): the fixture's six recordings read again by ten speakers, four of them children;
    test speaker 1008 has the number of a synthetic voice."""
    recordings = sorted(LIBRISPEECH.rglob("*.flac"))
    texts = {}
    for transcript in LIBRISPEECH.rglob("*.trans.txt"):
        texts.update(line.split(" ", 1) for line in transcript.read_text().splitlines())
    for subset, speakers in (("train", range(1, 9)), ("test", (1008, 9))):
        tables: dict[str, list[str]] = {"wav.scp": [], "text": [], "utt2spk": [], "spk2age": []}
        for speaker in (f"{number:04d}" for number in speakers):
            tables["spk2age"].append(f"{speaker}\t{8 if int(speaker) % 2 else 30}")
            for number, recording in enumerate(recordings[:3] if subset == "test" else recordings):
                utterance = f"{speaker}{number:05d}"
                (root / "WAVE").mkdir(parents=True, exist_ok=True)
                shutil.copy(recording, root / "WAVE" / f"{utterance}.flac")
                tables["wav.scp"].append(f"{utterance}\tWAVE/{utterance}.flac")
                tables["text"].append(f"{utterance}\t{texts[recording.stem]}")
                tables["utt2spk"].append(f"{utterance}\t{speaker}")
        (root / subset).mkdir()
        for name, lines in tables.items():
            (root / subset / name).write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the Debian package espeak-ng (make install)")
def test_synthetic_recipe_with_speechocean_trains_on_both_and_tests_each_engine_and_age_group(tmp_path: Path) -> None:
    """--held-out-engine none --with-speechocean: make demo-general's mode of the recipe."""
    config = {"data": {"max_frames": 2000, "num_workers": 0}, "model": TINY_MODEL, "epochs": 1, "plot_utterances": 1}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    args = ["--data", str(tmp_path / "synth"), "--exp", str(tmp_path / "exp"), "--engines", "espeak",
            "--held-out-engine", "none", "--train-utterances", "8", "--dev-utterances", "4", "--test-utterances", "4",
            "--vocabulary", "500", "--nproc", "1", "--config", str(tmp_path / "tiny.yaml"), "--device", "cpu",
            "--speechocean", str(speechocean_like(tmp_path / "so")), "--with-speechocean", "--speechocean-repeat", "3",
            "--train-lm", "--lm-config", str(tmp_path / "lm.yaml"), "--lm-weights", "0.5"]  # fmt: skip
    lm_config = {"data": {"max_tokens": 2000}, "model": {"embedding_dim": 8, "units": 16, "layers": 1}, "max_steps": 2}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(lm_config))
    result = run("recipes/synthetic/run.sh", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    results = (tmp_path / "exp" / "RESULTS.md").read_text()
    assert "| test | 4 |" in results and "| test: espeak | 4 |" in results  # the engine's held-out voices
    assert "| speechocean762 | 6 |" in results  # the real test set, a row per age group
    assert "| speechocean762: children | 3 |" in results and "| speechocean762: adults | 3 |" in results
    manifests = tmp_path / "exp" / "manifests"
    real_dev = read_manifest(manifests / "speechocean" / "dev.jsonl")
    assert real_dev and read_manifest(manifests / "dev.jsonl")[: len(real_dev)] == real_dev  # real dev first
    real_train = read_manifest(manifests / "speechocean" / "train.jsonl")
    assert read_manifest(manifests / "train.jsonl")[: len(real_train)] == real_train  # the statistics read it
    sources = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())["data"]["train"]
    assert {"manifest": str(manifests / "speechocean" / "train.jsonl"), "repeat": 3} in sources
    assert len(sources) == 2
    dev = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())["data"]["dev"]
    assert dev == [str(manifests / "speechocean" / "dev.jsonl"), str(manifests / "espeak" / "dev.jsonl")]
    lm_text = (tmp_path / "exp" / "lm-text-speechocean.txt").read_text().splitlines()
    assert lm_text == [normalize(u.text) for u in real_train]  # the LM reads them too
    assert "chosen on dev among 0.5" in results
    transcribed = result.stdout.split("== stage 7:")[1]
    assert transcribed.count("  REF: ") == 2  # a held-out voice and a real recording; no engine held out


def tiny_config_of(recipe_config: str, folder: Path) -> Path:
    """A one-epoch TINY_MODEL config that keeps the text section of the recipe's own config."""
    text = yaml.safe_load((ROOT / recipe_config).read_text())["text"]
    config = {"text": text, "data": {"max_frames": 500, "num_workers": 0}, "model": TINY_MODEL, "epochs": 1}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config | {"plot_utterances": 1}))
    return folder / "tiny.yaml"


def test_commonvoice_recipe_extracts_the_archive_and_trains_on_german_with_the_unicode_normaliser(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "cv-corpus-test-de.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(FIXTURES / "commonvoice" / "cv-corpus-test", arcname="cv-corpus-test")
    config = tiny_config_of("recipes/commonvoice/conf/train.yaml", tmp_path)
    args = ["--language", "de", "--archive", str(archive), "--data", str(tmp_path / "data"), "--config", str(config),
            "--exp", str(tmp_path / "exp"), "--beam", "2", "--device", "cpu"]  # fmt: skip
    result = run("recipes/commonvoice/run.sh", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "data" / "cv-corpus-test" / "de" / "clips").is_dir()  # stage 1
    assert "| test | 2 | 8 |" in (tmp_path / "exp" / "RESULTS.md").read_text()
    model = tmp_path / "exp" / "model"
    assert yaml.safe_load((model / "config.yaml").read_text())["text"]["normalizer"] == "unicode"
    tokens = (model / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert {"ß", "ü", "<unk>"} <= set(tokens)  # Straße and Grüße; 'ä' only once, in Bäcker: <unk>
    again = run("recipes/commonvoice/run.sh", *args)
    assert again.returncode == 0 and again.stdout.count("done already") == 4 and "stage 1" not in again.stdout


def test_commonvoice_recipe_says_where_to_download_when_there_is_no_archive(tmp_path: Path) -> None:
    result = run("recipes/commonvoice/run.sh", "--language", "de", "--data", str(tmp_path / "data"),
                 "--exp", str(tmp_path / "exp"), "--stop-stage", "1")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "https://commonvoice.mozilla.org/datasets" in result.stderr
    assert "--archive FILE" in result.stderr
    missing_language = run("recipes/commonvoice/run.sh", "--data", str(tmp_path / "data"))
    assert missing_language.returncode == 2 and "--language LANG is needed" in missing_language.stderr


def test_aishell_recipe_trains_on_characters_without_spaces_and_scores_by_cer(tmp_path: Path) -> None:
    config = tiny_config_of("recipes/aishell/conf/train.yaml", tmp_path)
    args = ["--stage", "2", "--data", str(FIXTURES / "aishell"), "--config", str(config),
            "--exp", str(tmp_path / "exp"), "--beam", "2", "--device", "cpu"]  # fmt: skip
    result = run("recipes/aishell/run.sh", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped 2 (missing audio: 1, no transcript: 1)" in result.stdout  # AISHELL's own gaps, counted
    results = (tmp_path / "exp" / "RESULTS.md").read_text()
    assert "| test | 2 |" in results and " | **" in results  # the CER, in bold
    model = tmp_path / "exp" / "model"
    text = yaml.safe_load((model / "config.yaml").read_text())["text"]
    assert (text["normalizer"], text["spaces"], text["metric"]) == ("unicode", False, "cer")
    tokens = (model / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert {"的", "成", "交"} <= set(tokens) and "<space>" not in tokens
    assert json.loads((tmp_path / "exp" / "eval" / "test" / "summary.json").read_text())["metric"] == "cer"


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or not Path("/usr/share/games/fortunes/chinese").is_file(),
    reason="needs the Debian packages espeak-ng, sox and fortunes-zh",
)
def test_multilingual_recipe_speaks_mandarin_trains_without_spaces_and_tables_the_cer(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"  # the text section comes from multilingual.sh, per language
    config.write_text(yaml.safe_dump({"data": {"max_frames": 500, "num_workers": 0}, "model": TINY_MODEL, "epochs": 1}))
    args = ["--languages", "zh", "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp"),
            "--config", str(config), "--train-utterances", "6", "--dev-utterances", "2", "--test-utterances", "2",
            "--nproc", "1", "--beam", "2", "--device", "cpu"]  # fmt: skip
    result = run("recipes/synthetic/multilingual.sh", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "espeak cmn-latn-pinyin+" in (tmp_path / "data" / "zh" / "SPEAKERS.TXT").read_text()
    texts = [u.text for u in read_manifest(tmp_path / "exp" / "zh" / "manifests" / "train.jsonl")]
    assert all(text and " " not in text and not text.isascii() for text in texts)
    text = yaml.safe_load((tmp_path / "exp" / "zh" / "model" / "config.yaml").read_text())["text"]
    assert (text["normalizer"], text["spaces"], text["metric"]) == ("unicode", False, "cer")
    table = (tmp_path / "exp" / "RESULTS.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| Mandarin |"))
    assert "| unicode, no spaces | 2 | - |" in row and " | **" in row  # no words; the CER in bold


@pytest.mark.parametrize(
    "config",
    sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("recipes/*/conf/*.yaml") if not p.name.startswith("lm")),
)
def test_every_training_config_of_the_recipes_loads(config: str) -> None:
    load_config(TrainConfig, ROOT / config)


@pytest.mark.parametrize("config", sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("recipes/*/conf/lm*.yaml")))
def test_every_lm_config_of_the_recipes_loads(config: str) -> None:
    load_config(LMTrainConfig, ROOT / config)


def test_the_demo_real_fine_tuning_config_fits_the_demo_model() -> None:
    """`make demo-real` starts from `make demo`'s model: init_from needs the same features and shapes."""
    demo = load_config(TrainConfig, ROOT / "recipes/synthetic/conf/train.yaml")
    finetune = load_config(TrainConfig, ROOT / "recipes/speechocean762/conf/finetune.yaml")
    assert finetune.features == demo.features
    for part in ("listener", "attention", "speller"):
        shapes = {k: v for k, v in vars(getattr(demo.model, part)).items() if k != "dropout"}
        assert shapes == {k: v for k, v in vars(getattr(finetune.model, part)).items() if k != "dropout"}
