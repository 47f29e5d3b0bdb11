"""The training config's bounds (`asr.training.config`): a value no run can use is one line before
anything is written."""

from pathlib import Path

import pytest

from asr.cli import main


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("seed=-1", "seed must be a whole number from 0 to 2147483647, got -1"),
        (f"seed={2**64}", "seed must be a whole number from 0 to 2147483647"),
        ("optim.schedule.lr=1e300", "need an lr above 0 and at most 1 and warmup_steps >= 0, got 1e+300"),
        ("decoding.beam=100000", "beam must be from 1 to 1000, got 100000"),
    ],
)
def test_an_out_of_range_setting_is_one_line_and_writes_nothing(tmp_path: Path, capsys, setting, problem) -> None:
    (tmp_path / "c.yaml").write_text("{}\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "exp"), "--set", setting]) == 1
    err = capsys.readouterr().err
    assert err.startswith("asr: error: ") and problem in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_an_lm_seed_out_of_range_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "lm.yaml").write_text("{seed: -3}\n")
    (tmp_path / "t.txt").write_text("A CAT\n")
    args = ["lm", "train", "--config", str(tmp_path / "lm.yaml"), "--text", str(tmp_path / "t.txt")]
    assert main([*args, "--out", str(tmp_path / "exp")]) == 1
    assert "seed must be a whole number from 0 to 2147483647, got -3" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()


def test_a_beam_past_the_widest_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--model", "m", "--manifest", "x.jsonl", "--out", "o", "--beam", "100000"])
    assert exit_.value.code == 2 and "--beam: must be at most 1000, got 100000" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["stats", "x.jsonl", "--out", "o.json", "--jobs", "100000"])
    assert exit_.value.code == 2 and "--jobs: must be at most 64, got 100000" in capsys.readouterr().err
