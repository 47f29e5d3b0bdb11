"""Processes launched by `torchrun`: rank, world size, the device each one drives.

A plain `asr train` is a world of one; `torchrun --nproc_per_node=N -m asr train ...`
sets RANK, WORLD_SIZE and LOCAL_RANK, and each process joins the group (NCCL on
GPUs, gloo on CPUs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes files, logs and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched_as_main() -> bool:
    """Whether this process is rank 0 of a torchrun launch, or was not launched by torchrun
    (known before the process group exists: from the RANK variable torchrun sets)."""
    return int(os.environ.get("RANK", "0")) == 0


def init_world(requested_device: str) -> World:
    """Join the process group if launched by torchrun (NCCL for GPUs, else gloo); otherwise a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    world = World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        on_gpu = requested_device != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return world


def all_agree(flag: bool, world: World, device: torch.device) -> bool:
    """True only if `flag` is true on every rank (so all ranks take the same branch)."""
    if not world.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def leave(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: T, world: World) -> T:
    """Rank 0's `value` on every rank (any picklable value; use it for small things such as metrics)."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
