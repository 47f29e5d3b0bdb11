"""Atomic writes and the folder lock (`asr.atomic`): long names, nothing left behind."""

from pathlib import Path

import pytest

from asr.atomic import FolderBusyError, atomic_write_text, exclusive_folder


def test_a_file_name_near_the_limit_is_written_through_a_shorter_temporary_name(tmp_path: Path) -> None:
    """A 250-byte name (and 124 two-byte letters) plus the temporary file's additions passed the
    file system's 255-byte limit."""
    for name in ("a" * 246 + ".txt", "é" * 124 + ".txt"):
        atomic_write_text(tmp_path / name, "hello\n")
        assert (tmp_path / name).read_text() == "hello\n"
    assert len(list(tmp_path.iterdir())) == 2


def test_a_lock_on_a_folder_it_made_leaves_nothing_when_nothing_was_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError), exclusive_folder(tmp_path / "exp", "asr train"):
        raise ValueError("a config error")
    assert not (tmp_path / "exp").exists()
    with exclusive_folder(tmp_path / "kept", "asr train"):
        (tmp_path / "kept" / "config.yaml").write_text("{}\n")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [".lock", "config.yaml"]
    (tmp_path / "mine").mkdir()
    with (
        exclusive_folder(tmp_path / "mine", "asr train"),
        pytest.raises(FolderBusyError, match="another asr train"),
        exclusive_folder(tmp_path / "mine", "asr train"),
    ):
        pass
    assert (tmp_path / "mine").is_dir()  # a folder the user made stays
