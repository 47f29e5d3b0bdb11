import json
import logging
from pathlib import Path

from asr.cli import main
from asr.prepare import prepare_librispeech
from tests.conftest import LIBRISPEECH
from tests.test_checkpoint import tiny_model_dir


def test_references_that_normalisation_spoils_are_named_before_scoring(tmp_path: Path, caplog) -> None:
    """normalize() drops digits from the references: the WER counts words that are not the ones spoken."""
    prepare_librispeech(LIBRISPEECH.parent, ["test-clean"], tmp_path)
    lines = (tmp_path / "test-clean.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    records[0]["text"] = "ROOM 101 IS FREE"
    (tmp_path / "digits.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    args = [
        "evaluate",
        "--model",
        str(tiny_model_dir(tmp_path / "model")),
        "--manifest",
        str(tmp_path / "digits.jsonl"),
    ]
    with caplog.at_level(logging.WARNING, logger="asr.evaluation"):
        assert main([*args, "--out", str(tmp_path / "eval"), "--jobs", "0", "--beam", "1"]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'digits.jsonl'}: reference transcripts holding digits: 1 (e.g. '1' in {records[0]['id']}: "
        "'ROOM 101 IS FREE'), which the character vocabulary cannot spell; asr prepare --expand-numbers writes them "
        "as words; they are scored without them"
    ]
