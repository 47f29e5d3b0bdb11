import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from asr.cli import main
from asr.config import ConfigError, apply_overrides, dump_config, from_dict, load_config
from asr.data.manifest import FilterConfig
from asr.frontend.features import FeatureConfig
from asr.frontend.normalization import NormStats
from asr.frontend.specaugment import SpecAugmentConfig
from asr.reading import TooLargeError
from asr.training.config import TrainConfig


@dataclass(frozen=True)
class Inner:
    units: int = 8
    rate: float = 0.1
    kind: Literal["dot", "additive"] = "dot"
    reduce: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if self.units < 1:
            raise ValueError(f"units must be positive, got {self.units}")


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    limit: float | None = None
    flag: bool = False
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)


def test_nested_values_build_the_dataclasses() -> None:
    config = from_dict(Outer, {"name": "y", "inner": {"units": 4, "rate": 1, "reduce": [3]}, "limit": 2.5})
    assert config == Outer(name="y", inner=Inner(units=4, rate=1.0, reduce=(3,)), limit=2.5)
    assert isinstance(config.inner.rate, float)


def test_missing_keys_take_the_defaults() -> None:
    assert from_dict(Outer, {}) == Outer()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inner": {"unit": 3}}, "unknown key 'inner.unit'; did you mean 'inner.units'?"),
        ({"zzz": 1}, "unknown key 'zzz'; known keys: name, inner"),
        ({"inner": {"units": "many"}}, "inner.units: expected a whole number, found str 'many'"),
        ({"inner": {"units": 2.5}}, "inner.units: expected a whole number"),
        ({"inner": {"units": True}}, "inner.units: expected a whole number"),
        ({"flag": 1}, "flag: expected true or false"),
        ({"limit": "soon"}, "limit: expected float or null"),
        ({"inner": {"kind": "cosine"}}, "inner.kind: expected one of 'dot', 'additive', found 'cosine'"),
        ({"inner": {"reduce": 2}}, "inner.reduce: expected a list"),
        ({"inner": {"reduce": [1, "a"]}}, r"inner.reduce\[1\]: expected a whole number"),
        ({"inner": 3}, "inner: expected a mapping"),
        ({"inner": {"units": 0}}, "inner: units must be positive, got 0"),
        ({"features": {"hop_ms": 50}}, "features: need 0 < hop_ms <= window_ms"),
    ],
)
def test_bad_keys_and_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_overrides_set_nested_keys_with_yaml_values() -> None:
    data = apply_overrides(
        {"inner": {"units": 4}}, ["inner.units=16", "inner.reduce=[1, 2, 3]", "limit=null", "flag=true"]
    )
    assert from_dict(Outer, data) == Outer(inner=Inner(units=16, reduce=(1, 2, 3)), flag=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [("inner.units", "expected key.sub=value"), ("name.first=a", "'name' is a value, not a section")],
)
def test_bad_overrides_are_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides({"name": "x"}, [override])


def test_saved_config_loads_back_equal(tmp_path: Path) -> None:
    config = Outer(inner=Inner(kind="additive", reduce=(2, 2)), limit=1.5, filters=FilterConfig(max_duration=math.inf))
    (tmp_path / "config.yaml").write_text(dump_config(config))
    assert load_config(Outer, tmp_path / "config.yaml") == config
    assert "inner:" in dump_config(config)


def test_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\ninner: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(Outer, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="none.yaml: no such file"):
        load_config(Outer, tmp_path / "none.yaml")
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x02")  # asr average given a checkpoint, not its folder
    with pytest.raises(ConfigError, match="checkpoint.pt/config.yaml: .*checkpoint.pt is a file, not a folder"):
        load_config(Outer, tmp_path / "checkpoint.pt" / "config.yaml")
    with pytest.raises(ConfigError, match="checkpoint.pt: not a text file"):
        load_config(Outer, tmp_path / "checkpoint.pt")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_config(Outer, tmp_path / "list.yaml")
    (tmp_path / "typo.yaml").write_text("inner:\n  unitz: 3\n")
    with pytest.raises(ConfigError, match="typo.yaml: unknown key 'inner.unitz'"):
        load_config(Outer, tmp_path / "typo.yaml")


def test_yaml_cannot_construct_objects(tmp_path: Path) -> None:
    (tmp_path / "evil.yaml").write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_config(Outer, tmp_path / "evil.yaml")


def test_a_number_in_exponent_form_without_a_dot_is_a_number() -> None:
    """YAML 1.1 reads 1e-4 as a string; a float field takes it as the number it means."""
    from asr.training.config import TrainConfig

    config = load_config(TrainConfig, None, ["optim.schedule.lr=1e-4", "optim.weight_decay=5E-3"])
    assert config.optim.schedule.lr == 1e-4 and config.optim.weight_decay == 5e-3
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(TrainConfig, None, ["optim.schedule.lr=e-4"])


@pytest.mark.parametrize(
    ("repeat", "message"),
    [
        ("0", "data.train[0]: repeat must be a whole number from 1 to 1000, got 0"),
        ("-2", "data.train[0]: repeat must be a whole number from 1 to 1000, got -2"),
        ("1000000000", "data.train[0]: repeat must be a whole number from 1 to 1000, got 1000000000"),
        ("0.5", "data.train[0].repeat: expected a whole number, found float 0.5"),
        (".nan", "data.train[0].repeat: expected a whole number, found float nan"),
    ],
)
def test_a_bad_value_inside_one_arm_of_a_union_is_named_not_the_union(repeat: str, message: str) -> None:
    """data.train is a manifest or a list of sources: a list with a bad repeat is a bad source, not a wrong kind."""
    with pytest.raises(ConfigError) as error:
        load_config(TrainConfig, None, [f"data.train=[{{manifest: a.jsonl, repeat: {repeat}}}]"])
    assert str(error.value) == f"--set data.train=[{{manifest: a.jsonl, repeat: {repeat}}}]: {message}"
    with pytest.raises(ConfigError, match="data.train: expected str or tuple, found int 5"):
        load_config(TrainConfig, None, ["data.train=5"])


def test_configs_that_never_end_or_explode_are_one_line(tmp_path: Path) -> None:
    """/dev/zero was read until memory ran out; nine lines of aliases expanded into a billion values
    when copied; a config nested 100,000 deep raised RecursionError."""
    with pytest.raises(TooLargeError, match="/dev/zero: more than 16 MiB, which no config is"):
        load_config(Outer, "/dev/zero")
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8)]
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    with pytest.raises(ConfigError, match="bomb.yaml: more than 100,000 values once its YAML aliases are expanded"):
        load_config(Outer, tmp_path / "bomb.yaml")
    (tmp_path / "deep.yaml").write_text("name: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml: nested too deeply to be a config"):
        load_config(Outer, tmp_path / "deep.yaml")
    (tmp_path / "nested.yaml").write_text("name: " + "[" * 60 + "]" * 60 + "\n")
    with pytest.raises(ConfigError, match="nested.yaml: nested more than 50 deep"):
        load_config(Outer, tmp_path / "nested.yaml")


def test_statistics_and_speaker_tables_that_never_end_are_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(TooLargeError, match="/dev/zero: more than 16 MiB, which no statistics file is"):
        NormStats.load("/dev/zero")
    args = ["evaluate", "--model", str(tmp_path / "m"), "--manifest", "x.jsonl", "--out", str(tmp_path / "o")]
    assert main([*args, "--groups", "/dev/zero"]) == 1
    assert capsys.readouterr().err == "asr: error: /dev/zero: more than 16 MiB, which no speaker table is\n"


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    (tmp_path / "twice.yaml").write_text("name: a\ninner:\n  units: 4\n  rate: 0.2\n  units: 16\n")
    with pytest.raises(
        ConfigError, match=r"twice.yaml:5: invalid YAML \(key 'units' given twice \(first on line 3\)\)"
    ):
        load_config(Outer, tmp_path / "twice.yaml")
    (tmp_path / "once.yaml").write_text("name: a\ninner:\n  units: 4\nfeatures:\n  n_mels: 40\n")
    assert load_config(Outer, tmp_path / "once.yaml").inner.units == 4  # a config without repeats loads


def test_a_bad_value_given_by_set_names_the_override_not_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("inner:\n  units: 4\n")
    with pytest.raises(ConfigError) as error:
        load_config(Outer, tmp_path / "c.yaml", ["name=y", "inner.units=0"])
    assert str(error.value) == "--set inner.units=0: inner: units must be positive, got 0"
    (tmp_path / "c.yaml").write_text("inner:\n  units: 0\n")
    with pytest.raises(ConfigError) as error:
        load_config(Outer, tmp_path / "c.yaml", ["name=y"])
    assert str(error.value) == f"{tmp_path / 'c.yaml'}: inner: units must be positive, got 0"
