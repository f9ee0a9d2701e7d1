"""The dead-letter stream: jobs that used up their attempts, kept for a person to look at,
requeue or drop."""

from __future__ import annotations

import time
from typing import Any

from instruct_lab_bot.adapters.redis.base import RedisPart, flat
from instruct_lab_bot.adapters.redis.jobs import queue_entry, read_job
from instruct_lab_bot.adapters.redis.keys import (
    DEAD_STREAM,
    DEAD_STREAM_MAX_AGE,
    STREAM_MAX_AGE,
    STREAM_MAXLEN,
    WORKER_GROUP,
    active_key,
    job_key,
    job_stream,
    result_claim_key,
)
from instruct_lab_bot.adapters.redis.streams import StreamEntry, min_id
from instruct_lab_bot.core.jobs import Job, State, bounded_field


class DeadLetters(RedisPart):
    async def dead_letter(self, entry: StreamEntry, job: Job, reason: str) -> bool:
        """End a job as dead, acknowledge its entry and record it in the dead-letter stream."""
        status, _previous = await self._durable_script(
            "dead_letter",
            [job_key(job.id), entry.stream, DEAD_STREAM, active_key(job)],
            [
                WORKER_GROUP,
                entry.id,
                bounded_field("error", reason),
                self.history_ttl,
                repr(time.time()),
                STREAM_MAXLEN,
                min_id(DEAD_STREAM_MAX_AGE),
            ],
        )
        return bool(status == "ok")

    async def dead_letters(self, count: int = 100) -> list[StreamEntry]:
        reply: Any = await self.redis.xrevrange(DEAD_STREAM, count=count)
        return [StreamEntry(DEAD_STREAM, entry_id, dict(values)) for entry_id, values in reply]

    async def dead_letter_count(self) -> int:
        return int(await self.redis.xlen(DEAD_STREAM))

    async def requeue_dead(self, entry_id: str) -> Job | None:
        """Admin action: give a dead job a fresh set of attempts, on its pool's stream."""
        reply: Any = await self.redis.xrange(DEAD_STREAM, entry_id, entry_id)
        if not reply:
            return None
        job = await read_job(self.redis, dict(reply[0][1])["job"])
        if job is None:
            return None
        fresh = job.evolve(
            state=State.QUEUED,
            attempts=0,
            worker="",
            error="",
            finished_at=0.0,
            requeued=job.requeued + 1,
        )
        await self._script("requeue_dead")(
            keys=[job_key(job.id), job_stream(job), DEAD_STREAM, result_claim_key(job.id)],
            args=[
                entry_id,
                STREAM_MAXLEN,
                min_id(STREAM_MAX_AGE),
                *flat(queue_entry(job)),
                *flat(fresh.to_fields()),
            ],
        )
        return fresh

    async def drop_dead(self, entry_id: str) -> bool:
        return bool(await self.redis.xdel(DEAD_STREAM, entry_id))
