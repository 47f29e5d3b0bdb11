"""Processes launched by `torchrun`: rank, world size, the device each one drives.

A plain `asr train` is a world of one without a process group; `torchrun
--nproc_per_node=N -m asr train ...` sets RANK, WORLD_SIZE and LOCAL_RANK, and each
process takes its device (GPU LOCAL_RANK) before it joins the group (NCCL on GPUs, gloo
on CPUs), as nanoGPT and icefall do: NCCL's collectives, pinned memory and the caching
allocator then all work on that GPU, not on GPU 0. A torchrun launch of one process
joins a group of one, so one GPU runs the same path as eight.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from asr.device import DeviceError, choose_device

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes, and the device it computes on."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    grouped: bool = False
    """Whether this process joined a process group (every torchrun launch, even of one process)."""

    @property
    def is_main(self) -> bool:
        """Whether this process writes files, logs and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether gradients, decisions and metrics go through the process group (DDP and collectives)."""
        return self.grouped


def launched_as_main() -> bool:
    """Whether this process is rank 0 of a torchrun launch, or was not launched by torchrun
    (known before the process group exists: from the RANK variable torchrun sets)."""
    return int(os.environ.get("RANK", "0")) == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher of several processes) started this process."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_world(requested_device: str, timeout: timedelta = timedelta(minutes=30)) -> World:
    """This process's world and device: a world of one, or, launched by torchrun, its place in the
    process group, which it joins after making its GPU (cuda:LOCAL_RANK) the current device.

    `requested_device` is what `choose_device` takes ("auto", "cpu", "cuda", "cuda:N"); under a
    torchrun launch of several processes a fixed "cuda:N", or more processes on this machine than
    it has GPUs, is a `DeviceError`, said before any work. `timeout`: how long a collective
    waits for the slowest rank (rank 0 validates alone while the others wait)."""
    if not launched_by_torchrun():
        return World(device=choose_device(requested_device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    here = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    if requested_device.startswith("cuda:") and here > 1:
        raise DeviceError(
            f"--device {requested_device} would put all {here} processes of this machine on one GPU; "
            "use --device cuda (each process takes GPU LOCAL_RANK)"
        )
    device = choose_device(requested_device, local_rank)
    if device.type == "cuda" and local_rank >= torch.cuda.device_count():
        raise DeviceError(
            f"torchrun started process {local_rank} of this machine, which has {torch.cuda.device_count()} "
            f"GPU(s); use --nproc_per_node={torch.cuda.device_count()} or fewer"
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before the group: NCCL, pinning and the allocator follow it
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), local_rank, device, grouped=True)
    if not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group(backend="nccl", device_id=device, timeout=timeout)
        else:
            dist.init_process_group(backend="gloo", timeout=timeout)
    return world


def collective_timeout(dev_utterances: int, seconds_each: float = 1.0) -> timedelta:
    """How long the other ranks may wait while rank 0 validates alone: 30 minutes, and
    `seconds_each` for each dev utterance (greedy search in batches of 8 on a slow GPU takes
    well under that; LibriSpeech's dev-clean, 2,703 utterances: 75 minutes)."""
    return timedelta(minutes=30, seconds=dev_utterances * seconds_each)


def all_agree(flag: bool, world: World) -> bool:
    """True only if `flag` is true on every rank (so all ranks take the same branch)."""
    if not world.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=world.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0)


def all_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """`values` (a small CPU tensor) summed over every rank, on the CPU: one collective and, with
    NCCL, one wait for the device."""
    if not world.distributed:
        return values
    summed = values.to(world.device)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return summed.cpu()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier(device_ids=[world.device.index] if world.device.type == "cuda" else None)


def leave(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: T, world: World) -> T:
    """Rank 0's `value` on every rank (any picklable value; use it for small things such as metrics).
    The pickled bytes travel through this process's device (NCCL moves only GPU tensors)."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, device=world.device)
    return box[0]
