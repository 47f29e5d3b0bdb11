"""Each process of a torchrun launch drives its own GPU: simulated here on a CPU with mocks for
what only CUDA and NCCL can do (benchmarks/gpu_check.sh runs the real thing on a lent GPU)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from asr.device import DeviceError
from asr.training.distributed import World, broadcast, collective_timeout, init_world


@pytest.fixture()
def gpus(monkeypatch) -> list[tuple[str, object]]:
    """A machine with 4 GPUs as far as init_world can tell; returns the calls made to CUDA and the
    process group, in order."""
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", torch.device(device))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **options: calls.append(("init_process_group", options)))
    return calls


def launch(monkeypatch, rank: int, size: int) -> None:
    """The variables torchrun sets in process `rank` of `size` on one machine."""
    for name, value in {"RANK": rank, "WORLD_SIZE": size, "LOCAL_RANK": rank, "TORCHELASTIC_RUN_ID": "x"}.items():
        monkeypatch.setenv(name, str(value))


@pytest.mark.parametrize("rank", [0, 1, 3])
def test_each_rank_makes_its_own_gpu_current_before_joining_the_nccl_group(gpus, monkeypatch, rank: int) -> None:
    launch(monkeypatch, rank, 4)
    world = init_world("cuda")
    own = torch.device("cuda", rank)
    assert world == World(rank=rank, size=4, local_rank=rank, device=own, grouped=True)
    assert gpus == [
        ("set_device", own),
        ("init_process_group", {"backend": "nccl", "device_id": own, "timeout": timedelta(minutes=30)}),
    ]


def test_the_broadcast_of_validation_results_travels_through_the_ranks_own_gpu(gpus, monkeypatch) -> None:
    launch(monkeypatch, 2, 4)
    world = init_world("cuda")
    used: list[object] = []

    def broadcast_object_list(box: list, src: int, device: torch.device | None = None) -> None:
        used.append(device)
        box[0] = {"wer": 12.5}  # what rank 0 sent

    monkeypatch.setattr(dist, "broadcast_object_list", broadcast_object_list)
    assert broadcast(None, world) == {"wer": 12.5}
    assert used == [torch.device("cuda", 2)]


def test_a_torchrun_launch_of_one_process_joins_a_group_of_one(gpus, monkeypatch) -> None:
    launch(monkeypatch, 0, 1)
    world = init_world("cuda")
    assert world.distributed and world.size == 1 and world.device == torch.device("cuda", 0)
    assert [name for name, _ in gpus] == ["set_device", "init_process_group"]


def test_a_process_launched_on_cpus_joins_a_gloo_group_and_sets_no_gpu(gpus, monkeypatch) -> None:
    launch(monkeypatch, 1, 2)
    world = init_world("cpu")
    assert world.device == torch.device("cpu") and world.distributed
    assert gpus == [("init_process_group", {"backend": "gloo", "timeout": timedelta(minutes=30)})]


def test_a_plain_process_is_a_world_of_one_without_a_group(gpus, monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    world = init_world("cuda")
    assert world == World(device=torch.device("cuda", 0)) and not world.distributed
    assert gpus == []  # no group, and the device is left for the caller to use


def test_a_fixed_gpu_under_a_launch_of_several_processes_is_one_line_before_any_work(gpus, monkeypatch) -> None:
    launch(monkeypatch, 1, 4)
    with pytest.raises(DeviceError, match=r"^--device cuda:2 would put all 4 processes of this machine on one GPU; "):
        init_world("cuda:2")
    assert gpus == []


def test_more_processes_than_gpus_is_one_line_naming_the_count(gpus, monkeypatch) -> None:
    launch(monkeypatch, 5, 8)
    with pytest.raises(DeviceError, match=r"process 5 of this machine, which has 4 GPU\(s\); use --nproc_per_node=4"):
        init_world("cuda")
    assert gpus == []


def test_the_collectives_wait_longer_for_a_longer_dev_set(gpus, monkeypatch) -> None:
    assert collective_timeout(0) == timedelta(minutes=30)
    assert collective_timeout(2703) == timedelta(minutes=30, seconds=2703)  # LibriSpeech's dev-clean
    launch(monkeypatch, 0, 2)
    init_world("cuda", collective_timeout(600))
    assert gpus[-1][1]["timeout"] == timedelta(minutes=40)
