"""Concurrent requests decoded together: a bounded queue in front of one worker.

The worker takes the requests waiting, up to `batch_size` of them, once that many wait, or the
oldest has waited `max_wait_seconds` (counted from the end of the batch it came during, if it
did), or waiting is pointless: no other request is on its way (`Batcher.expecting`: being
received, not yet queued) and the oldest came to an idle server. It decodes them with one call on
the executor (the event loop goes on taking requests meanwhile) and resolves each request's future
with its own result. A request that comes alone is thus decoded at once, and requests that come
together, or while a batch is decoded, share a batch. A full queue refuses a request at once
(`QueueFull`); a request whose client gave up leaves the queue (`Batcher.abandon`): it is not
decoded unless its batch had already started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class QueueFull(Exception):
    """Every place in the queue is taken: the server is busy, the client should try again later."""


class ServerClosing(Exception):
    """The server stopped before the request was decoded."""


@dataclass(eq=False)
class Job(Generic[Item, Result]):
    """One request's item, the future its result arrives in, when it arrived (loop time, seconds)
    and whether a batch was being decoded then (the server under load)."""

    item: Item
    future: asyncio.Future[Result]
    arrived: float
    under_load: bool
    started: bool = field(default=False)


class Batcher(Generic[Item, Result]):
    """A bounded queue of items and the worker that decodes them in batches with
    `decode(items) -> results` (one result per item, in order), run by `executor` (default: the
    event loop's thread pool)."""

    def __init__(
        self,
        decode: Callable[[list[Item]], Sequence[Result]],
        batch_size: int,
        max_wait_seconds: float,
        queue_size: int,
        executor: Executor | None = None,
    ) -> None:
        if batch_size < 1 or queue_size < 1 or not max_wait_seconds >= 0:
            raise ValueError("need batch_size >= 1, queue_size >= 1 and max_wait_seconds >= 0")
        self.decode = decode
        self.executor = executor
        self.batch_size = batch_size
        self.max_wait_seconds = max_wait_seconds
        self.queue_size = queue_size
        self._pending: deque[Job[Item, Result]] = deque()
        self._running: list[Job[Item, Result]] = []
        self._expected = 0
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for a batch."""
        return len(self._pending)

    @property
    def decoding(self) -> int:
        """Requests in the batch being decoded."""
        return len(self._running)

    def start(self) -> None:
        """Start the worker (in the running event loop)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="asr-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still waiting fail with `ServerClosing`."""
        waiting = [*self._pending, *self._running]
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for job in waiting:
            if not job.future.done():
                job.future.set_exception(ServerClosing("the server is shutting down"))
        self._pending.clear()

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """While this block runs, a request is on its way (its upload being read): a batch that
        is not full waits for it (up to `max_wait_seconds`)."""
        self._expected += 1
        try:
            yield
        finally:
            self._expected -= 1
            self._arrived.set()

    def submit(self, item: Item) -> Job[Item, Result]:
        """Queue `item`; its job's future gets the result. Raises `QueueFull` when `queue_size` wait."""
        if len(self._pending) >= self.queue_size:
            raise QueueFull(f"all {self.queue_size} places in the queue are taken")
        loop = asyncio.get_running_loop()
        job: Job[Item, Result] = Job(item, loop.create_future(), loop.time(), under_load=bool(self._running))
        self._pending.append(job)
        self._arrived.set()
        return job

    async def abandon(self, job: Job[Item, Result]) -> None:
        """The client of `job` went away: a job still waiting leaves the queue (its place is free
        and it is never decoded); one being decoded is waited for, since its item may still be read."""
        if job in self._pending:
            self._pending.remove(job)
            job.future.cancel()
            return
        if job.started and not job.future.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(job.future)
        if job.future.done() and not job.future.cancelled():
            job.future.exception()  # seen: no "exception was never retrieved" warning

    def _worth_waiting(self) -> bool:
        """Whether a batch that is not full should wait for more requests: some are being received,
        or its oldest request came while a batch was being decoded (others are likely to follow,
        as the clients of that batch get their answers). A request that finds the server idle and
        nobody else arriving is decoded at once."""
        return bool(self._pending) and (self._expected > 0 or self._pending[0].under_load)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        free_since = loop.time()  # when the last batch was decoded
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            while len(self._pending) < self.batch_size and self._worth_waiting():
                # a request that came during a batch waits from that batch's end, when its clients come back
                waited_since = max(self._pending[0].arrived, free_since)
                left = waited_since + self.max_wait_seconds - loop.time()
                if left <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
            if not self._pending:  # every one of them was abandoned while the batch filled
                continue
            batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
            for job in batch:
                job.started = True
            self._running = batch
            started = loop.time()
            try:
                results = await loop.run_in_executor(self.executor, self.decode, [job.item for job in batch])
            except Exception as error:  # a bug, not a bad request: each request of the batch answers 500
                log.exception("decoding a batch of %d failed", len(batch))
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(error)
            else:
                log.info("decoded a batch of %d in %.3f s (%d waiting)", len(batch), loop.time() - started, self.queued)
                for job, result in zip(batch, results, strict=True):
                    if not job.future.done():
                        job.future.set_result(result)
            finally:
                self._running = []
                free_since = loop.time()
