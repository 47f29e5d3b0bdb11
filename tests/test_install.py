"""The install: requirements.lock agrees with pyproject.toml, a bad torch/torchaudio pair fails in one line,
and the transcription API imports nothing that only synthesis needs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def locked_versions(lock: Path) -> dict[str, Version]:
    """Package name -> pinned version, from the `name==version \\` lines of a requirements lock."""
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", lock.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): Version(pinned) for name, pinned in pins}


def direct_requirements(pyproject: Path) -> list[Requirement]:
    """The project's dependencies and those of every extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return [Requirement(line) for line in project["dependencies"] + [r for extra in extras for r in extra]]


def lock_disagreements(pyproject: Path, lock: Path) -> list[str]:
    """One line per requirement of pyproject.toml that the lock leaves out or pins outside its range."""
    pins = locked_versions(lock)
    problems = []
    for requirement in direct_requirements(pyproject):
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{lock.name} has no pin for {requirement}")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{lock.name} pins {requirement.name}=={pinned}, outside pyproject.toml's {requirement}")
    return problems


def test_the_lock_pins_every_requirement_of_pyproject_inside_its_range() -> None:
    problems = lock_disagreements(ROOT / "pyproject.toml", ROOT / "requirements.lock")
    assert not problems, "; ".join(problems) + ": run `make lock` and commit requirements.lock"


def test_a_changed_range_or_a_new_dependency_is_reported(tmp_path: Path) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    changed = pyproject.replace('"torch>=2.11,<2.12"', '"torch>=2.12"').replace(
        '"pyyaml>=6.0",', '"pyyaml>=6.0",\n    "no-such-package>=1",'
    )
    assert changed != pyproject
    (tmp_path / "pyproject.toml").write_text(changed)
    problems = lock_disagreements(tmp_path / "pyproject.toml", ROOT / "requirements.lock")
    assert problems == [
        f"requirements.lock pins torch=={version('torch').split('+')[0]}, outside pyproject.toml's torch>=2.12",
        "requirements.lock has no pin for no-such-package>=1",
    ]


def test_the_installed_environment_is_the_locked_one() -> None:
    pins = locked_versions(ROOT / "requirements.lock")
    for package in ("torch", "torchaudio", "numpy", "jiwer", "librosa"):
        assert Version(version(package)).public == str(pins[package]), package


def test_the_install_check_passes_here() -> None:
    result = subprocess.run([sys.executable, "scripts/check_install.py"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_torchaudio_that_cannot_load_fails_the_install_check_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "torchaudio"
    broken.mkdir()
    (broken / "__init__.py").write_text(
        "raise OSError('Could not load this library: libtorchaudio.so\\n(undefined symbol: torch_exception)')\n"
    )
    result = subprocess.run(
        [sys.executable, "scripts/check_install.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"error: torch {version('torch')} and torchaudio {version('torchaudio')} do not load together "
        "(Could not load this library: libtorchaudio.so); install the pair from requirements.lock (make install)\n"
    )
