"""The `local` serving backend, server side: PR models served by `ilab model serve` on a
`serve`-capable worker, started on demand and stopped when idle (scale to zero).

The server process and the serve workers agree through Redis (`adapters/redis/serving.py`):
`deploy` writes the PR's record (the desired train job; nothing runs yet), `ready_url` stamps
the request time, pushes the record onto the wake-up list and waits until the worker that
claimed it reports READY with a URL (or FAILED with why); `remove` deletes the record and
wakes a worker, which stops a server whose record is gone. The worker side is
`services/serving/local_worker.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import structlog

from instruct_lab_bot.adapters.redis.serving import ServeRecords
from instruct_lab_bot.core.messages import serving_backend as texts
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.serve_record import (
    ANSWERING,
    STARTING,
    STOPPED,
    Actual,
    new_desired,
    record_key,
    served,
)
from instruct_lab_bot.core.serving import ModelRef, ServedModel, ServeState
from instruct_lab_bot.services.serving.backend import ServingError

log = structlog.get_logger(__name__)


class LocalBackend:
    """`ServingBackend` over the serve workers' shared records."""

    def __init__(
        self,
        records: ServeRecords,
        *,
        cold_start: float = 120.0,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.2,
    ) -> None:
        self.records = records
        self.cold_start = cold_start
        self.clock = clock
        self.poll_interval = poll_interval

    async def deploy(self, model: ModelRef) -> ServedModel:
        """Record the desired model; a new train replaces the old one (a worker running the
        old train job stops it). Nothing runs until a request comes."""
        desired = new_desired(model, self.clock(), self.cold_start)
        await self.records.put_desired(desired)
        await self.records.wake(desired.key)
        log.info("serving.local.deployed", pull=str(model.pull), train_job=model.train_job)
        return served(desired, await self._actual(desired.key))

    async def status(self, pull: PullRequestRef) -> ServedModel | None:
        key = record_key(pull)
        desired = await self.records.desired(key)
        if desired is None:
            return None
        return served(desired, await self._actual(key))

    async def _actual(self, key: str) -> Actual | None:
        """The worker's report, unless that worker's lease lapsed (it died): then nothing
        runs, and the next request starts the model on a live worker."""
        actual = await self.records.actual(key)
        if actual is None or actual.phase not in (ANSWERING, STARTING):
            return actual
        if await self.records.owner(key) is None:  # as if stopped: scaled to zero
            return dataclasses.replace(actual, phase=STOPPED, url="")
        return actual

    async def ready_url(self, pull: PullRequestRef, within: float) -> str:
        """Wakes the model (a cold start when stopped) and waits until it answers."""
        key = record_key(pull)
        desired = await self.records.desired(key)
        if desired is None:
            raise ServingError(texts.not_served(), not_your_fault=False)
        now = self.clock()
        model = served(desired, await self._actual(key))
        if model.state is ServeState.READY and model.url:
            await self.records.put_desired(desired.with_(last_request_at=now))
            return model.url
        wanted = max(now, desired.wanted_at + 0.001)  # strictly later: a new wake-up
        await self.records.put_desired(desired.with_(last_request_at=now, wanted_at=wanted))
        await self.records.wake(key)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            await asyncio.sleep(self.poll_interval)
            model = await self.status(pull) or model
            if model.train_job != desired.train_job or await self.records.desired(key) is None:
                raise ServingError(texts.not_served(), not_your_fault=False)
            if model.state is ServeState.READY and model.url:
                return model.url
            if model.state is ServeState.FAILED:
                raise ServingError(texts.failed_to_start(model.message))
        raise ServingError(texts.still_starting(within))

    async def remove(self, pull: PullRequestRef) -> bool:
        removed = await self.records.delete(pull)
        await self.records.wake(record_key(pull))  # the worker running it stops it
        return removed

    async def list_served(self) -> list[ServedModel]:
        return [served(d, await self._actual(d.key)) for d, _ in await self.records.everything()]

    async def aclose(self) -> None:
        return None
