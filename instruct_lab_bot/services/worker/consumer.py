"""The worker's consume loop: a slot per concurrent job, entries read from the jobs streams of
the worker's pools (its capabilities; or reclaimed there from a worker that stopped
heartbeating), the worker's registration kept alive, and on stop a drain that lets running
jobs finish within the grace, then hands them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable

import structlog

from instruct_lab_bot import __version__
from instruct_lab_bot.adapters.redis.keys import WORKER_GROUP, jobs_stream
from instruct_lab_bot.adapters.redis.streams import StreamEntry
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.lease import ActiveJob

log = structlog.get_logger(__name__)

#: Runs one entry to its end (`takeover`: reclaimed from a worker that lost its lease).
Handle = Callable[[StreamEntry, bool], Awaitable[None]]
Batch = tuple[list[StreamEntry], bool]


class Consumer:
    """Feeds stream entries to `handle`, at most `concurrency` at a time."""

    def __init__(self, deps: WorkerDeps, name: str, concurrency: int, handle: Handle) -> None:
        self.deps = deps
        self.name = name
        self.concurrency = concurrency
        self.handle = handle
        #: Jobs running now, by id (their leases; the drain stops them).
        self.active: dict[str, ActiveJob] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._groups_ready = False
        self._next_reclaim = 0.0
        self._turn = 0  # which pool's stream is asked first (each in turn: none starves)

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The job kinds (pools) this worker takes."""
        return self.deps.settings.worker_capabilities

    def _streams(self) -> list[str]:
        """This worker's pools' streams, starting one further along at each call."""
        streams = [jobs_stream(c) for c in self.capabilities]
        self._turn = (self._turn + 1) % len(streams)
        return streams[self._turn :] + streams[: self._turn]

    async def run(self, stop: asyncio.Event) -> None:
        """Take entries until `stop` is set, then drain (see `_drain`)."""
        log.info(
            "worker.started",
            worker=self.name,
            concurrency=self.concurrency,
            capabilities=",".join(self.capabilities),
        )
        background = [
            asyncio.create_task(self._announce(stop)),
            asyncio.create_task(self.deps.metrics.queue.run(self.deps.queue, stop)),
        ]
        while await self._take_slot(stop):
            room = 1 + await self._take_free_slots()
            entries, takeover = await self._next(stop, room)
            for _unused in range(room - len(entries)):
                self._slots.release()
            # Started in one tick: their first Redis calls share round trips (`TickBatch`).
            for entry in entries:
                task = asyncio.create_task(self._handle_and_release(entry, takeover))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        await self._drain()
        await asyncio.gather(*background, return_exceptions=True)
        with contextlib.suppress(*redis_calls.REDIS_ERRORS):
            await self.deps.queue.unregister_worker(self.name)
        log.info("worker.stopped", worker=self.name)

    async def _next(self, stop: asyncio.Event, room: int) -> Batch:
        """The next entries (at most `room`: the slots this loop holds), waiting out a Redis
        outage (nothing once `stop` is set)."""

        async def pause(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

        def forget_groups() -> None:  # a restarted Redis without AOF has lost them
            self._groups_ready = False

        return await redis_calls.consume(
            "worker", lambda: self._poll(stop, room), sleep=pause, on_error=forget_groups
        )

    async def _poll(self, stop: asyncio.Event, room: int) -> Batch:
        if stop.is_set():
            return [], False
        queue, settings = self.deps.queue, self.deps.settings
        if not self._groups_ready:  # at start, and again after Redis came back
            await queue.ensure_groups(events=False, capabilities=self.capabilities)
            self._groups_ready = True
        streams = self._streams()
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + settings.heartbeat_interval
            lease_ms = int(settings.lease_timeout * 1000)
            for stream in streams:
                stale = await queue.claim_stale(stream, WORKER_GROUP, self.name, lease_ms, room)
                if stale:
                    return stale, True
        fresh = await queue.read_batch(streams, WORKER_GROUP, self.name, count=room, block_ms=1000)
        return fresh, False

    async def _announce(self, stop: asyncio.Event) -> None:
        """Keep this worker's registration (status page, `workers_live`) alive while it runs."""
        interval = self.deps.settings.heartbeat_interval
        info = {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "version": __version__,
            "ilab_version": str(self.deps.ilab.version),
            "concurrency": str(self.concurrency),
            "capabilities": ",".join(self.capabilities),
            "started_at": repr(time.time()),
        }
        while not stop.is_set():
            info["jobs"] = ",".join(sorted(self.active))
            with contextlib.suppress(*redis_calls.REDIS_ERRORS):
                await self.deps.queue.register_worker(self.name, info, ttl=3 * interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _take_slot(self, stop: asyncio.Event) -> bool:
        """Wait for a free slot; False once `stop` is set (no new job is taken)."""
        if stop.is_set():
            return False
        slot = asyncio.ensure_future(self._slots.acquire())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait((slot, stopped), return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if stop.is_set():
            if slot.done() and not slot.cancelled():
                self._slots.release()
            slot.cancel()
            return False
        return True

    async def _take_free_slots(self) -> int:
        """Take every slot free now, without waiting: how many (a read may fill them all)."""
        taken = 0
        while not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            taken += 1
        return taken

    async def _drain(self) -> None:
        """Let running jobs finish within the shutdown grace, then hand them back."""
        if not self._tasks:
            return
        settings = self.deps.settings
        log.info("worker.draining", jobs=len(self._tasks), grace=settings.shutdown_grace)
        _done, pending = await asyncio.wait(self._tasks, timeout=settings.shutdown_grace)
        if not pending:
            return
        for active in self.active.values():
            active.stop("shutdown")
        _done, pending = await asyncio.wait(pending, timeout=settings.kill_grace + 10)
        for task in pending:  # stuck outside the subprocess (git, upload): cancel outright
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _handle_and_release(self, entry: StreamEntry, takeover: bool) -> None:
        try:
            await self.handle(entry, takeover)
        except Exception:
            log.exception("worker.job_crashed", entry=entry.id)
        finally:
            self._slots.release()
