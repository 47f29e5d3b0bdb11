import errno
import os
import pickle
import re
import stat
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml

from asr.checkpoint import (
    CheckpointError,
    average_state_dicts,
    export_model_dir,
    list_checkpoints,
    load_model_dir,
    load_training_state,
    read_model_dir,
    remove_stale_temporaries,
    save_training_state,
)
from asr.config import to_dict
from asr.errors import UserError
from asr.frontend.normalization import NormStats
from asr.model import LAS, AttentionConfig, LASConfig, ListenerConfig, SpellerConfig
from asr.text import Vocabulary

STATS = NormStats(mean=(0.0, 1.0), std=(1.0, 2.0), frames=5)


def test_training_state_round_trips_and_only_the_newest_are_kept(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    for step in (10, 20, 30):
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "rng": torch.get_rng_state(),
        }
        save_training_state(state, tmp_path, step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000020.pt", "step-000000030.pt"]
    loaded = load_training_state(list_checkpoints(tmp_path)[-1])
    assert loaded["step"] == 30
    torch.testing.assert_close(loaded["model"]["weight"], model.state_dict()["weight"])
    fresh = torch.optim.AdamW(model.parameters())
    fresh.load_state_dict(loaded["optimizer"])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left


class Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_checkpoint_holding_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "step-000000001.pt"
    torch.save({"x": Exploit()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_training_state(path)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="cut.pt: not a readable checkpoint"):
        load_training_state(tmp_path / "cut.pt")


def test_averaging_means_floats_and_keeps_integers_from_the_last() -> None:
    states = [
        {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)},
        {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)},
    ]
    averaged = average_state_dicts(states)
    torch.testing.assert_close(averaged["w"], torch.tensor([2.0, 4.0]))
    assert averaged["n"] == 7
    with pytest.raises(ValueError, match="different parameters"):
        average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])


def test_model_directory_round_trips_without_pickle(tmp_path: Path) -> None:
    weights = {"encoder.weight": torch.randn(4, 3), "decoder.bias": torch.randn(2)}
    config = {"model": {"units": 4}, "decoding": {"beam": 4}}
    export_model_dir(tmp_path / "model", config, weights, Vocabulary.default(), STATS)
    read_config, read_weights, vocab, stats = read_model_dir(tmp_path / "model")
    assert read_config == config and vocab == Vocabulary.default() and stats == STATS
    assert read_weights.keys() == weights.keys()
    torch.testing.assert_close(read_weights["encoder.weight"], weights["encoder.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left


def test_exporting_again_replaces_the_directory(tmp_path: Path) -> None:
    for value in (1.0, 2.0):
        export_model_dir(tmp_path / "model", {}, {"w": torch.full((2,), value)}, Vocabulary.default(), STATS)
    assert read_model_dir(tmp_path / "model")[1]["w"][0] == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_linked_model_directory_is_written_through_its_link(tmp_path: Path) -> None:
    """EXP/model (or average's --out) a link to a folder elsewhere: the export replaced the link's
    target? It raised IsADirectoryError and left a `.model.old.*` folder."""
    (tmp_path / "elsewhere").mkdir()
    export_model_dir(tmp_path / "elsewhere" / "model", {}, {"w": torch.zeros(1)}, Vocabulary.default(), STATS)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "model").symlink_to(tmp_path / "elsewhere" / "model")
    export_model_dir(tmp_path / "exp" / "model", {}, {"w": torch.ones(1)}, Vocabulary.default(), STATS)
    assert (tmp_path / "exp" / "model").is_symlink() and read_model_dir(tmp_path / "exp" / "model")[1]["w"][0] == 1.0
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["model"]
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["model"]


def test_what_a_killed_export_left_is_removed_by_the_next_not_what_a_running_one_stages(tmp_path: Path) -> None:
    gone = 2**22 + 12345  # above Linux's pid_max default: no process has it
    while True:
        try:
            os.kill(gone, 0)
        except ProcessLookupError:
            break
        gone += 1
    left = [tmp_path / f".model.{gone}.k1ll3d_x", tmp_path / f".model.old.{gone}.k1ll3d_y"]
    running = tmp_path / f".model.{os.getpid()}.busy_z"
    for folder in (*left, running):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"0" * 1000)
    export_model_dir(tmp_path / "model", {}, {"w": torch.zeros(1)}, Vocabulary.default(), STATS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, "model"])


def test_a_tokens_file_that_is_not_the_exported_one_is_refused(tmp_path: Path) -> None:
    """Two letters swapped in tokens.txt load and spell every A as B; config.yaml records the digest
    of the tokens the weights were trained on. A directory from before the record loads as it did."""
    export_model_dir(tmp_path / "model", {}, {"w": torch.zeros(1)}, Vocabulary.default(), STATS)
    tokens = tmp_path / "model" / "tokens.txt"
    lines = tokens.read_text().splitlines()
    a, b = lines.index("A"), lines.index("B")
    lines[a], lines[b] = lines[b], lines[a]
    tokens.write_text("\n".join(lines) + "\n")
    with pytest.raises(CheckpointError, match="tokens.txt: not the vocabulary this model was exported with"):
        read_model_dir(tmp_path / "model")
    record = yaml.safe_load((tmp_path / "model" / "config.yaml").read_text())
    del record["tokens_sha256"]
    (tmp_path / "model" / "config.yaml").write_text(yaml.safe_dump(record))
    assert read_model_dir(tmp_path / "model")[2] != Vocabulary.default()  # unchecked, as before


def test_bad_model_directories_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nothing: no such model directory"):
        read_model_dir(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("format_version: 1\n")
    with pytest.raises(
        CheckpointError, match="not a model directory \\(missing model.safetensors, tokens.txt, cmvn.json\\)"
    ):
        read_model_dir(tmp_path / "half")
    export_model_dir(tmp_path / "old", {}, {"w": torch.zeros(1)}, Vocabulary.default(), STATS)
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump({"format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        read_model_dir(tmp_path / "old")


def test_a_pickle_posing_as_weights_is_refused(tmp_path: Path) -> None:
    export_model_dir(tmp_path / "model", {}, {"w": torch.zeros(1)}, Vocabulary.default(), STATS)
    (tmp_path / "model" / "model.safetensors").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="not readable safetensors"):
        read_model_dir(tmp_path / "model")


def tiny_model_dir(folder: Path, training: dict | None = None) -> Path:
    """A loadable model directory of a 1-layer model with 80-dim statistics."""
    vocab = Vocabulary.default()
    config = LASConfig(
        listener=ListenerConfig(layers=1, units=8, reduce=()),
        attention=AttentionConfig(dim=8),
        speller=SpellerConfig(embedding_dim=4, units=8),
        vocab_size=len(vocab),
    )
    record = {"model": to_dict(config), "decoding": {"beam": 3}, "training": training or {}}
    stats = NormStats(mean=(0.0,) * 80, std=(1.0,) * 80, frames=1)
    return export_model_dir(folder, record, LAS(config).state_dict(), vocab, stats)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda d: (d / "config.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), "config.yaml: not a text file"),
        (lambda d: (d / "tokens.txt").write_bytes(b"\xff\xfe\x00"), "tokens.txt: not a tokens file"),
        (lambda d: (d / "tokens.txt").write_text("<blank>\n<pad>\n"), "tokens.txt: a vocabulary must start with"),
        (lambda d: (d / "cmvn.json").write_bytes(b"\xff\xfe\x00"), "cmvn.json: not a statistics file"),
        (
            lambda d: (d / "cmvn.json").write_text('{"mean": [0.0], "std": [1.0], "frames": 1}'),
            "cmvn.json: statistics have 1 dimensions, the features 80",
        ),
        (
            lambda d: (d / "config.yaml").write_text(
                (d / "config.yaml").read_text().replace("training: {}", "training: {longest_utterance_seconds: .inf}")
            ),
            "training.longest_utterance_seconds must be a positive number",
        ),
    ],
)
def test_a_damaged_model_directory_is_one_line_naming_the_file(tmp_path: Path, damage, problem: str) -> None:
    directory = tiny_model_dir(tmp_path / "model")
    load_model_dir(directory)  # loads before the damage
    damage(directory)
    with pytest.raises(UserError, match=re.escape(problem)):
        load_model_dir(directory)


def test_weights_with_nan_are_neither_exported_nor_loaded(tmp_path: Path) -> None:
    weights = {"w": torch.tensor([1.0, float("nan")]), "steps": torch.tensor(3)}
    with pytest.raises(
        CheckpointError, match="1 weight tensors hold NaN or infinity \\(first: w\\); training diverged"
    ):
        export_model_dir(tmp_path / "model", {}, weights, Vocabulary.default(), STATS)
    assert not (tmp_path / "model").exists()
    directory = tiny_model_dir(tmp_path / "good")
    state = safetensors.torch.load_file(str(directory / "model.safetensors"))
    first = next(iter(state))
    state[first][0] = float("inf")
    safetensors.torch.save_file(state, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"first: {re.escape(first)}"):
        load_model_dir(directory)


def test_model_files_follow_the_umask_so_others_can_load_them(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        directory = tiny_model_dir(tmp_path / "model")
    finally:
        os.umask(old)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir()}
    assert modes == dict.fromkeys(["config.yaml", "model.safetensors", "tokens.txt", "cmvn.json"], 0o644)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    save_training_state({"x": torch.zeros(1)}, tmp_path, 5, keep=3)
    (tmp_path / ".step-000000010.pt.ab12cd.tmp").write_bytes(b"half a checkpoint")
    assert remove_stale_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["step-000000005.pt"]


def test_exporting_replaces_only_a_model_directory(tmp_path: Path) -> None:
    weights, vocab = {"w": torch.zeros(1)}, Vocabulary.default()
    (tmp_path / "mine" / "photos").mkdir(parents=True)
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    (tmp_path / "file").write_text("keep me")
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "tokens.txt").write_text("my own")
    for path, problem in (
        ("mine", "not a model directory (holds notes.txt, photos)"),
        ("file", "is a file, not a model directory"),
        ("tokens", "not a model directory (holds no model)"),
    ):
        with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path / path}: {problem}")):
            export_model_dir(tmp_path / path, {}, weights, vocab, STATS)
    assert (tmp_path / "file").read_text() == "keep me" and (tmp_path / "tokens" / "tokens.txt").read_text() == "my own"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt", "photos"]
    (tmp_path / "empty").mkdir()
    (tmp_path / ".empty.old").write_text("not touched either")
    export_model_dir(tmp_path / "empty", {}, weights, vocab, STATS)
    assert read_model_dir(tmp_path / "empty")[1].keys() == {"w"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".empty.old", "empty", "file", "mine", "tokens"]
    export_model_dir(tmp_path / "empty", {}, weights, vocab, STATS)  # now a model directory: replaced
    assert (tmp_path / ".empty.old").read_text() == "not touched either"


def test_a_full_disk_under_the_weights_writers_is_an_os_error_naming_the_file(tmp_path: Path, monkeypatch) -> None:
    """safetensors and torch.save report a failed write in their own words (a SafetensorError, an
    "[enforce fail at inline_container.cc] ... file write failed"): the command printed them raw."""

    def full(*args, **kwargs):
        raise safetensors.SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, .. })")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError) as caught:
        export_model_dir(tmp_path / "model", {}, {"w": torch.zeros(1)}, Vocabulary.default(), STATS)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "model" / "model.safetensors")
    assert list(tmp_path.iterdir()) == []  # the staging folder went too

    def write_failed(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: "
            "file write failed"
        )

    monkeypatch.setattr(torch, "save", write_failed)
    with pytest.raises(OSError) as caught:
        save_training_state({"step": 1}, tmp_path / "checkpoints", step=1, keep=2)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename.endswith(".pt")
    assert list((tmp_path / "checkpoints").iterdir()) == []  # no half-written checkpoint
