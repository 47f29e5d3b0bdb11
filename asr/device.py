"""Which device a command computes on: "auto", "cpu", "cuda" or "cuda:N"."""

from __future__ import annotations

import torch

from asr.errors import UserError


class DeviceError(UserError):
    """A device was asked for that this machine does not have."""


def choose_device(requested: str, local_rank: int = 0) -> torch.device:
    """`requested` is "auto" (a GPU if there is one), "cpu", "cuda" or "cuda:N"; "cuda" means the
    GPU of `local_rank` (each process of a torchrun launch takes its own)."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested != "cpu" and requested.split(":")[0] != "cuda":
        raise DeviceError(f"unknown device '{requested}'; use auto, cpu, cuda or cuda:N")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device '{requested}' was asked for, but this machine has no CUDA GPU")
        if requested == "cuda":
            return torch.device("cuda", local_rank)
    try:
        return torch.device(requested)
    except RuntimeError:
        raise DeviceError(f"unknown device '{requested}'; use auto, cpu, cuda or cuda:N") from None
