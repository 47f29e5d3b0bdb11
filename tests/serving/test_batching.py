"""The queue in front of the decoder: batches, waiting, a full queue, clients that give up."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from asr.serving.batching import Batcher, QueueFull, ServerClosing


def upper(batches: list[list[str]], gate: threading.Event | None = None):
    """A decode function that records its batches and upper-cases them, after `gate` opens."""

    def decode(items: list[str]) -> list[str]:
        batches.append(list(items))
        if gate is not None:
            gate.wait(10)
        return [item.upper() for item in items]

    return decode


async def until(condition) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


def test_requests_that_arrive_together_share_one_batch_and_each_gets_its_own_result() -> None:
    async def scenario() -> tuple[list[str], list[list[str]]]:
        batches: list[list[str]] = []
        batcher = Batcher(upper(batches), batch_size=4, max_wait_seconds=5.0, queue_size=8)
        batcher.start()
        jobs = [batcher.submit(item) for item in "abcd"]
        results = [await job.future for job in jobs]
        await batcher.stop()
        return results, batches

    assert asyncio.run(scenario()) == (["A", "B", "C", "D"], [["a", "b", "c", "d"]])


def test_a_lone_request_waits_no_longer_than_max_wait() -> None:
    async def scenario() -> float:
        batcher = Batcher(upper([]), batch_size=8, max_wait_seconds=0.05, queue_size=8)
        batcher.start()
        start = time.monotonic()
        assert await batcher.submit("a").future == "A"
        await batcher.stop()
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 2.0


def test_a_request_that_comes_alone_is_decoded_at_once_however_long_max_wait_is() -> None:
    async def scenario() -> float:
        batcher = Batcher(upper([]), batch_size=8, max_wait_seconds=30.0, queue_size=8)
        batcher.start()
        start = time.monotonic()
        assert await batcher.submit("a").future == "A"
        await batcher.stop()
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 5.0


def test_a_batch_waits_for_a_request_still_being_received_and_no_longer_than_max_wait() -> None:
    async def scenario() -> tuple[list[list[str]], float]:
        batches: list[list[str]] = []
        batcher = Batcher(upper(batches), batch_size=8, max_wait_seconds=30.0, queue_size=8)
        batcher.start()
        with batcher.expecting():
            first = batcher.submit("a")
            await asyncio.sleep(0.2)  # the second request's upload is still coming
            assert not first.future.done()
            second = batcher.submit("b")
        assert (await first.future, await second.future) == ("A", "B")
        late = Batcher(upper(batches), batch_size=8, max_wait_seconds=0.1, queue_size=8)
        late.start()
        start = time.monotonic()
        with late.expecting():  # a request that never comes (its upload is refused)
            assert await late.submit("c").future == "C"
            waited = time.monotonic() - start
        await batcher.stop()
        await late.stop()
        return batches, waited

    batches, waited = asyncio.run(scenario())
    assert batches == [["a", "b"], ["c"]] and 0.1 <= waited < 5.0


def test_a_request_that_came_during_a_batch_waits_after_it_for_that_batch_s_clients() -> None:
    async def scenario() -> list[list[str]]:
        batches: list[list[str]] = []
        gate = threading.Event()
        batcher = Batcher(upper(batches, gate), batch_size=8, max_wait_seconds=0.5, queue_size=8)
        batcher.start()
        first = batcher.submit("a")
        await until(lambda: batcher.decoding == 1)
        second = batcher.submit("b")  # under load
        await asyncio.sleep(0.8)  # longer than max_wait: counted from the batch's end, not from its arrival
        gate.set()
        assert await first.future == "A"
        third = batcher.submit("c")  # the first batch's client comes back
        assert (await second.future, await third.future) == ("B", "C")
        await batcher.stop()
        return batches

    assert asyncio.run(scenario()) == [["a"], ["b", "c"]]


def test_a_full_queue_refuses_and_an_abandoned_request_frees_its_place_without_being_decoded() -> None:
    async def scenario() -> list[list[str]]:
        batches: list[list[str]] = []
        gate = threading.Event()
        batcher = Batcher(upper(batches, gate), batch_size=1, max_wait_seconds=0.0, queue_size=1)
        batcher.start()
        first = batcher.submit("a")
        await until(lambda: batcher.decoding == 1)
        second = batcher.submit("b")
        with pytest.raises(QueueFull):
            batcher.submit("c")
        await batcher.abandon(second)
        assert second.future.cancelled() and batcher.queued == 0
        third = batcher.submit("c")
        gate.set()
        assert await first.future == "A" and await third.future == "C"
        await batcher.stop()
        return batches

    assert asyncio.run(scenario()) == [["a"], ["c"]]


def test_a_failing_decode_fails_its_batch_and_the_next_batch_is_decoded() -> None:
    def decode(items: list[str]) -> list[str]:
        if "bad" in items:
            raise RuntimeError("a bug")
        return items

    async def scenario() -> None:
        batcher = Batcher(decode, batch_size=2, max_wait_seconds=1.0, queue_size=4)
        batcher.start()
        jobs = [batcher.submit("bad"), batcher.submit("ok")]
        for job in jobs:
            with pytest.raises(RuntimeError, match="a bug"):
                await job.future
        assert await batcher.submit("fine").future == "fine"
        await batcher.stop()

    asyncio.run(scenario())


def test_stopping_fails_the_requests_still_waiting() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        batcher = Batcher(upper([], gate), batch_size=1, max_wait_seconds=0.0, queue_size=4)
        batcher.start()
        running = batcher.submit("a")
        await until(lambda: batcher.decoding == 1)
        waiting = batcher.submit("b")
        await batcher.stop()
        gate.set()
        for job in (running, waiting):
            with pytest.raises(ServerClosing):
                await job.future

    asyncio.run(scenario())


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Batcher(upper([]), batch_size=0, max_wait_seconds=0.0, queue_size=1)
