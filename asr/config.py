"""YAML configs of plain values, loaded into the stages' frozen dataclasses.

A config file holds only mappings, lists, strings, numbers, booleans and nulls
(`yaml.safe_load`): it never constructs objects. Keys mirror the dataclass fields;
an unknown key, a wrong type or a value a dataclass rejects is a `ConfigError` that
names the key. Overrides (`key.sub=value`) are parsed as YAML values and applied
before the check, so they obey the same rules.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from asr.errors import UserError
from asr.reading import read_small_text

T = TypeVar("T")

_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(UserError):
    """A config file, key or value that cannot be used; the message names the key."""


class _WrongKind(ConfigError):
    """A value at `key` that is not of the kind the field holds (a list for a number): another arm of a
    union may take it. Any other error at or below `key` means the value had the right kind but is wrong."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _convert(kind: Any, value: Any, key: str) -> Any:
    """`value` as an instance of the annotation `kind`, or a ConfigError naming `key`."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, key)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(kind)
        if value is None and type(None) in arms:
            return None
        for arm in (a for a in arms if a is not type(None)):
            try:
                return _convert(arm, value, key)
            except _WrongKind as error:
                if error.key != key:  # the value is of this arm's kind; something inside it is wrong
                    raise
        names = " or ".join("null" if a is type(None) else getattr(a, "__name__", str(a)) for a in arms)
        raise _WrongKind(key, f"expected {names}, found {_describe(value)}")
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise _WrongKind(key, f"expected one of {', '.join(map(repr, choices))}, found {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _WrongKind(key, f"expected a list, found {_describe(value)}")
        arms = typing.get_args(kind)
        if len(arms) == 2 and arms[1] is Ellipsis:
            return tuple(_convert(arms[0], item, f"{key}[{i}]") for i, item in enumerate(value))
        if len(arms) != len(value):
            raise _WrongKind(key, f"expected a list of {len(arms)} items, found {len(value)}")
        return tuple(_convert(arm, item, f"{key}[{i}]") for i, (arm, item) in enumerate(zip(arms, value, strict=True)))
    if kind is bool:
        if not isinstance(value, bool):
            raise _WrongKind(key, f"expected true or false, found {_describe(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _WrongKind(key, f"expected a whole number, found {_describe(value)}")
        return value
    if kind is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _WrongKind(key, f"expected a number, found {_describe(value)}")
        if math.isnan(value):
            raise ConfigError(f"{key}: expected a number, found NaN")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise _WrongKind(key, f"expected a string, found {_describe(value)}")
        return value
    raise TypeError(f"{key}: the config loader does not handle fields of type {kind!r}")


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build the dataclass `cls` (recursively) from plain values, checking keys and types.

    Missing keys take the dataclass defaults. `where` prefixes key names in errors.
    """
    if not isinstance(data, Mapping):
        raise _WrongKind(where or "config", f"expected a mapping of keys to values, found {_describe(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    values = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{_join(where, close[0])}'?" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"unknown key '{_join(where, str(key))}'{hint}")
        values[key] = _convert(hints[key], value, _join(where, key))
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'config'}: {error}") from None


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `data` with each `key.sub=value` override set; values are parsed as YAML."""
    result = _plain_copy(data)
    for override in overrides:
        path, sep, text = override.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"override '{override}': expected key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"override '{override}': the value is not valid YAML") from None
        keys = path.strip().split(".")
        node = result
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{override}': '{'.'.join(keys[: depth + 1])}' is a value, not a section")
            node = child
        node[keys[-1]] = value
    return result


def _plain_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {key: _plain_copy(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_plain_copy(value) for value in data]
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (PyYAML keeps the last
    silently: `lr: 1e-3` further down would undo an edit made above)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' given twice (first on line {seen[key] + 1})", key_node.start_mark
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of plain values; errors name the file (and line)."""
    path = Path(path)
    try:
        text = read_small_text(path, "config")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except NotADirectoryError:
        raise ConfigError(f"{path}: {path.parent} is a file, not a folder") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (invalid UTF-8)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({(error.strerror or str(error)).lower()})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  a SafeLoader: plain values only
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML ({error.problem})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top, found {type(data).__name__}")
    _check_size(data, str(path))
    return data


MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 50


def _check_size(data: Any, where: str) -> None:
    """Refuse a config of more than `MAX_CONFIG_VALUES` values once its aliases are expanded (a YAML
    alias bomb: a few lines that copying makes billions of values) or nested past `MAX_CONFIG_DEPTH`;
    counted without recursion and without expanding anything."""
    count, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(f"{where}: more than {MAX_CONFIG_VALUES:,} values once its YAML aliases are expanded")
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{where}: nested more than {MAX_CONFIG_DEPTH} deep, which no config is")
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list | tuple) else ()
        stack.extend((child, depth + 1) for child in children)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Read `path` (YAML; None for all defaults), apply `overrides`, build `cls`."""
    data = read_yaml(path) if path is not None else {}
    try:
        return from_dict(cls, apply_overrides(data, overrides))
    except ConfigError as error:
        where = str(error).split(":", 1)[0].split("[", 1)[0]  # the key the message names, "data.train"
        for override in reversed(overrides):  # the last one given for a key is the one in force
            key = override.partition("=")[0].strip()
            if _within(key, where) or _within(where, key):
                raise ConfigError(f"--set {override}: {error}") from None
        raise ConfigError(f"{path}: {error}" if path is not None else str(error)) from None


def _within(key: str, section: str) -> bool:
    """Whether `key` ("data.train") is `section` ("data") or lies inside it."""
    return key == section or key.startswith(section + ".")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain values of a dataclass config (tuples become lists), as YAML writes them."""
    return _plain_copy(dataclasses.asdict(config))


def dump_config(config: Any) -> str:
    """YAML text of a dataclass config that `load_config` reads back to an equal config."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], where: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain-value configs (sections compared key by key)."""
    changed = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed += config_changes(a, b, _join(where, str(key)))
        elif a != b:
            changed.append(_join(where, str(key)))
    return changed
