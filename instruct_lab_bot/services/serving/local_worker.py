"""The `local` serving backend, worker side: a `serve`-capable worker starts a PR model's
server when a request wants it, stops it after `ILAB_BOT_SERVE_IDLE` without a request (scale
to zero), and runs at most `ILAB_BOT_SERVE_MAX_MODELS` at once (the least recently used stops
first). It blocks on the wake-up list (`adapters/redis/serving.py`) and looks at its servers
at least every `check_every` seconds; an owner lease per model keeps two workers from
running one model, and lets another worker take over after this one dies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.serving import ServeRecords
from instruct_lab_bot.core.serve_record import (
    ANSWERING,
    FAILED,
    STARTING,
    STOPPED,
    Actual,
    Desired,
)
from instruct_lab_bot.core.serving import ModelRef
from instruct_lab_bot.services.serving.backend import ServingError

log = structlog.get_logger(__name__)


class ModelServer(Protocol):
    """A running model server: its OpenAI-compatible base URL, and how to stop it."""

    @property
    def url(self) -> str: ...

    async def stop(self) -> object: ...


class Launcher(Protocol):
    async def __call__(self, model: ModelRef, ready_within: float) -> ModelServer:
        """Start `model`'s server and return once it answers; `ServingError` (why, safe
        to show) when it cannot within `ready_within` seconds."""
        ...


@dataclass(frozen=True)
class LocalLimits:
    """`ILAB_BOT_SERVE_IDLE`, `ILAB_BOT_SERVE_MAX_MODELS`, `ILAB_BOT_SERVE_READY_TIMEOUT`."""

    idle: float
    max_models: int
    ready_timeout: float


@dataclass
class _Running:
    server: ModelServer
    train_job: str
    for_wanted: float
    last_request_at: float


class LocalServeWorker:
    def __init__(
        self,
        records: ServeRecords,
        launcher: Launcher,
        limits: LocalLimits,
        *,
        name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records = records
        self.launcher = launcher
        self.name = name
        self.idle = limits.idle
        self.max_models = limits.max_models
        self.ready_timeout = limits.ready_timeout
        self.clock = clock
        self.check_every = max(min(self.idle / 4, 5.0), 0.01)
        # Renewed on every check: a dead worker's models are free again after this long.
        self.lease = max(30.0, self.check_every * 6)
        self.running: dict[str, _Running] = {}
        self.starts = 0  # cold starts this worker made (tests, metrics)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; every server this worker started is stopped on exit."""
        stopping = asyncio.create_task(stop.wait())
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self._turn(stopping)
                    failures = 0
                except (RedisError, OSError) as exc:  # Redis away: the servers keep running
                    failures += 1
                    log.warning("serving.local.redis_error", error=str(exc)[:300])
                    delay = min(0.5 * 2 ** min(failures, 6), 30.0)
                    await asyncio.wait({stopping}, timeout=delay)
        finally:
            stopping.cancel()
            for key in list(self.running):
                await self._stop(key, report=True)

    async def _turn(self, stopping: asyncio.Task[bool]) -> None:
        """One wait for a wake-up (or `check_every`), then the checks."""
        waking = asyncio.create_task(self.records.next_wake(self.check_every))
        await asyncio.wait({waking, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not waking.done():  # stopping: do not wait out the blocking pop
            waking.cancel()
            await asyncio.gather(waking, return_exceptions=True)
            return
        key = waking.result()
        if key is not None:
            await self.handle(key)
        await self.check()

    async def handle(self, key: str) -> None:
        """Bring one model to what its desired record asks."""
        desired = await self.records.desired(key)
        running = self.running.get(key)
        if running is not None and (desired is None or desired.train_job != running.train_job):
            await self._stop(key, report=desired is not None)  # removed, or a new train
            running = None
        if desired is None:
            return
        if running is not None:
            if desired.wanted_at > running.for_wanted:  # answer the new request's wake-up
                running.for_wanted = desired.wanted_at
                await self._report(key, desired, ANSWERING, running.server.url)
            return
        actual = await self.records.actual(key)
        handled = actual is not None and actual.train_job == desired.train_job
        if desired.wanted_at <= (actual.for_wanted if actual and handled else 0.0):
            return  # nobody asked for it since the last answer
        if not await self.records.claim(key, self.name, self.lease):
            return  # another worker runs it
        await self._start(key, desired)

    async def _start(self, key: str, desired: Desired) -> None:
        while len(self.running) >= self.max_models:
            oldest = min(self.running, key=lambda k: self.running[k].last_request_at)
            log.info("serving.local.evicted", model=oldest, limit=self.max_models)
            await self._stop(oldest, report=True)
        await self._report(key, desired, STARTING)
        self.starts += 1
        try:
            server = await self.launcher(desired.model, self.ready_timeout)
        except ServingError as exc:
            await self._report(key, desired, FAILED, message=str(exc))
            await self.records.release(key, self.name)
            return
        self.running[key] = _Running(
            server, desired.train_job, desired.wanted_at, desired.last_request_at
        )
        await self._report(key, desired, ANSWERING, server.url)
        log.info("serving.local.started", model=key, url=server.url)

    async def check(self) -> None:
        """Stop idle servers and those whose record went; keep the rest's leases."""
        for key, running in list(self.running.items()):
            desired = await self.records.desired(key)
            if desired is None or desired.train_job != running.train_job:
                await self._stop(key, report=desired is not None)
                continue
            running.last_request_at = desired.last_request_at
            if self.clock() - desired.last_request_at > self.idle:
                log.info("serving.local.idle_stop", model=key)
                await self._stop(key, report=True)
            elif not await self.records.claim(key, self.name, self.lease):
                await self._stop(key, report=False)  # lost the lease: the new owner reports

    async def _stop(self, key: str, *, report: bool) -> None:
        running = self.running.pop(key, None)
        if running is None:
            return
        await running.server.stop()
        try:
            await self.records.release(key, self.name)
            desired = await self.records.desired(key)
            if desired is None:
                await self.records.put_actual(key, None)
            elif report and desired.train_job == running.train_job:
                await self._report(key, desired, STOPPED, for_wanted=running.for_wanted)
        except (RedisError, OSError) as exc:  # the lease lapses: readers see it stopped
            log.warning("serving.local.stop_unrecorded", model=key, error=str(exc)[:300])

    async def _report(
        self,
        key: str,
        desired: Desired,
        phase: str,
        url: str = "",
        *,
        message: str = "",
        for_wanted: float | None = None,
    ) -> None:
        wanted = desired.wanted_at if for_wanted is None else for_wanted
        actual = Actual(desired.train_job, phase, self.clock(), url, message, self.name, wanted)
        await self.records.put_actual(key, actual)
