import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import LIBRISPEECH
from tests.test_training import TINY_MODEL

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
    assert (tmp_path / "exp" / "model" / "model.safetensors").is_file()
    again = run("recipes/librispeech/run.sh", *args)
    assert again.returncode == 0 and again.stdout.count("done already") == 5


def test_recipe_rejects_an_unknown_option() -> None:
    result = run("recipes/librispeech/run.sh", "--nonsense", "1")
    assert result.returncode == 2 and "unknown option --nonsense" in result.stderr
