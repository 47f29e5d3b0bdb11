"""Precision (`asr.training.validation.resolve_precision`): what "auto" and each setting mean on
each device, refused before any work where the device cannot run it."""

import pytest
import torch

from asr.errors import UserError
from asr.training.validation import autocast, resolve_precision

GPU = torch.device("cuda", 0)
CPU = torch.device("cpu")


@pytest.fixture(params=[True, False], ids=["bf16 GPU", "older GPU"])
def gpu_has_bf16(request, monkeypatch) -> bool:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: request.param)
    return request.param


def test_auto_is_bf16_on_a_gpu_that_has_it_and_fp16_with_a_scaler_on_one_that_has_not(gpu_has_bf16: bool) -> None:
    assert resolve_precision("auto", GPU) == ("bf16" if gpu_has_bf16 else "fp16")
    assert resolve_precision("fp32", GPU) == "fp32" and resolve_precision("fp16", GPU) == "fp16"


def test_bf16_on_a_gpu_without_it_is_one_line(gpu_has_bf16: bool) -> None:
    if gpu_has_bf16:
        assert resolve_precision("bf16", GPU) == "bf16"
    else:
        with pytest.raises(UserError, match=r"^precision: bf16, but cuda:0 has no bf16 .*; use fp16 or auto$"):
            resolve_precision("bf16", GPU)


def test_a_cpu_computes_in_fp32_unless_asked_and_refuses_fp16() -> None:
    assert resolve_precision("auto", CPU) == "fp32" and resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(UserError, match="^precision: fp16 needs a GPU"):
        resolve_precision("fp16", CPU)


def test_fp32_autocasts_nothing_and_bf16_autocasts_to_bf16() -> None:
    x = torch.randn(3, 4)
    with autocast("fp32", CPU):
        assert (x @ x.T).dtype == torch.float32
    with autocast("bf16", CPU):
        assert (x @ x.T).dtype == torch.bfloat16
