"""The package's layout: imports run one way (down the pipeline), inference loads nothing of
training, and the command line answers --help and usage errors without torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "asr"

FLOORS: dict[str, int] = {
    "asr.errors": 0,
    "asr.atomic": 1,
    "asr.config": 1,
    "asr.progress": 1,
    "asr.outputs": 1,
    "asr.reading": 1,
    "asr.text": 2,
    "asr.scoring": 3,
    "asr.device": 3,
    "asr.plotting": 3,
    "asr.frontend": 3,
    "asr.model": 3,
    "asr.data": 4,
    "asr.decoding": 4,
    "asr.checkpoint": 5,
    "asr.lm": 6,
    "asr.recognize": 7,
    "asr.transcribe": 8,
    "asr.writers": 9,
    "asr.evaluation": 9,
    "asr.synthesis": 10,
    "asr.training": 10,
    "asr.serving": 10,
    "asr.lm.corpus": 11,
    "asr.lm.training": 11,
    "asr.lm.evaluation": 11,
    "asr.cli": 12,
    "asr.__main__": 13,
}
"""The floor of each part of the package (the longest prefix of a module's name decides): a
module may import from its own floor and those below it, never from one above. The package
itself (`asr`, the public API that imports the transcription API when first used) stands apart."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def floor(module: str) -> int:
    prefixes = [p for p in FLOORS if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} has no floor in FLOORS; give it one"
    return FLOORS[max(prefixes, key=len)]


@cache
def imports(module: str) -> tuple[tuple[str, int, bool], ...]:
    """(imported module, line, at module level) for every import of a module of the package,
    lazy ones inside functions included."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body} | {
        id(inner) for node in tree.body if isinstance(node, ast.If) for inner in node.body
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module.split(".")[0] == "asr" else []
            # `from asr.lm import corpus` imports the module asr.lm.corpus
            names = [f"{n}.{a.name}" if f"{n}.{a.name}" in modules() else n for n in names for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "asr"]
        else:
            continue
        found += [(name, node.lineno, id(node) in top) for name in names]
    return tuple(found)


def test_every_import_runs_down_the_pipeline_never_back_up_a_floor() -> None:
    upward = [
        f"{modules()[module].relative_to(ROOT)}:{line}: {module} (floor {floor(module)}) imports "
        f"{imported} (floor {floor(imported)})"
        for module in modules()
        if module != "asr"
        for imported, line, _ in imports(module)
        if imported != "asr" and floor(imported) > floor(module)
    ]
    assert upward == []


def test_the_package_imports_form_no_cycle() -> None:
    graph = {m: sorted({i for i, _, _ in imports(m) if i in modules() and i != "asr"}) for m in modules()}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in graph[module]:
            if state.get(imported) == "open":
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_every_package_module_has_a_floor_and_the_floor_table_no_stale_entry() -> None:
    for module in modules():
        if module != "asr":
            floor(module)
    stale = [prefix for prefix in FLOORS if not any(m == prefix or m.startswith(prefix + ".") for m in modules())]
    assert stale == []


def test_no_top_level_name_is_the_prefix_of_another() -> None:
    """A prefix shared by file names (`lm_*`, `training_*`) is a folder that was not made."""
    names = sorted(
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and not path.stem.startswith("__")) or (path / "__init__.py").is_file()
    )
    shared = [(a, b) for a in names for b in names if a != b and b.split("_")[0].startswith(a.split("_")[0])]
    assert shared == []


def test_no_module_is_longer_than_450_lines() -> None:
    long = {m: n for m, path in modules().items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450}
    assert long == {}


def loaded_after(code: str) -> dict[str, list[str]]:
    """Run `code` in a fresh interpreter; it prints a JSON object."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


INFERENCE = r"""
import json, sys
import asr
model_api = (asr.load_model, asr.Recognizer, asr.Transcript)
from asr.transcribe import Recognizer, load_model
from asr.writers import WRITERS
from asr.evaluation import evaluate
unwanted = ("asr.training", "asr.synthesis", "asr.lm.corpus", "asr.lm.training", "asr.lm.evaluation", "asr.cli",
            "tensorboard", "torch.utils.tensorboard", "num2words")
print(json.dumps({"loaded": sorted(m for m in sys.modules if m.startswith(unwanted))}))
"""


def test_transcription_and_evaluation_load_nothing_of_training_synthesis_tensorboard_nor_the_cli() -> None:
    assert loaded_after(INFERENCE) == {"loaded": []}


def test_no_inference_module_imports_torch_distributed_tensorboard_or_training() -> None:
    """torch itself loads torch.distributed, so this reads the import statements of everything
    `asr.transcribe` and `asr.evaluation` reach."""
    reached, todo = set(), ["asr.transcribe", "asr.evaluation", "asr.writers"]
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        reached.add(module)
        todo += [i for i, _, _ in imports(module) if i in modules()]
    statements = {
        f"{module}: {node.module if isinstance(node, ast.ImportFrom) else alias.name}"
        for module in reached
        for node in ast.walk(ast.parse(modules()[module].read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if any(
            (node.module if isinstance(node, ast.ImportFrom) else alias.name or "").startswith(banned)
            for banned in ("torch.distributed", "torch.nn.parallel", "torch.utils.tensorboard", "asr.training")
        )
    }
    assert statements == set()


CLI = r"""
import contextlib, io, json, sys
from asr.cli import build_parser, main
commands = [a for a in build_parser()._subparsers._group_actions[0].choices]
calls = [["--help"], *([c, "--help"] for c in commands), ["prepare", "tsv", "--help"], ["transcribe"],
         ["evaluate", "--beam", "x"], ["no-such-command"]]
statuses = []
for argv in calls:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exit:
            statuses.append(exit.code)
heavy = ("torch", "torchaudio", "numpy", "librosa", "tqdm", "num2words")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({"commands": commands, "statuses": statuses, "heavy": heavy}))
"""


def test_help_and_usage_errors_answer_without_loading_torch_numpy_librosa_or_num2words() -> None:
    seen = loaded_after(CLI)
    assert {"transcribe", "train", "evaluate", "prepare", "synthesize", "lm"} <= set(seen["commands"])
    assert seen["statuses"] == [0] * (len(seen["commands"]) + 2) + [2, 2, 2]
    assert seen["heavy"] == []


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_every_folder_says_what_its_job_is_in_its_docstring(folder: str) -> None:
    tree = ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8"))
    assert len(ast.get_docstring(tree) or "") > 100
