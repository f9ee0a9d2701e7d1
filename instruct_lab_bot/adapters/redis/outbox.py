"""The outbox of final results: what a finished job must still tell GitHub, kept in Redis
until GitHub took it, so a failing GitHub or a dead process cannot lose it.

A worker records the entry before it acknowledges the job (`put_result`, once per job); any
worker process then claims due entries under a lease (`claim_results`), renews the lease
while it posts (`renew_result`), and settles each (`result_done`, or `retry_result` later).
An entry whose owner died becomes due again when its lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from instruct_lab_bot.adapters.redis.base import RedisPart
from instruct_lab_bot.adapters.redis.keys import (
    OUTBOX_KEY,
    OUTBOX_TTL,
    outbox_entry_key,
    result_claim_key,
)
from instruct_lab_bot.adapters.redis.tick import ReplicaWaitTimeout


@dataclass(frozen=True)
class ClaimedResult:
    job_id: str
    payload: str
    attempts: int  # including this one: > 1 means an earlier attempt may have posted


class Outbox(RedisPart):
    async def put_result(
        self, job_id: str, payload: str, state: str = "", ttl: int = OUTBOX_TTL
    ) -> bool:
        """Record a job's final result (and the end `state` it reports); False if it was
        recorded before (or delivered)."""
        keys = [result_claim_key(job_id), outbox_entry_key(job_id), OUTBOX_KEY]
        args = [job_id, payload, ttl, state or "1"]
        return bool(await self._durable_script("outbox_put", keys, args))

    async def claim_results(
        self, owner: str, lease: float, *, count: int = 10, job_id: str | None = None
    ) -> list[ClaimedResult]:
        """Due entries (or just `job_id`, if due), leased to `owner` for `lease` seconds."""
        # The first `count` by due time are the only ones that can be due; the script claims
        # those that are (by Redis's clock), each entry's key declared.
        if job_id is not None:
            ids = [job_id]
        else:
            ids = cast(list[str], await self.redis.zrange(OUTBOX_KEY, 0, count - 1))
        if not ids:
            return []
        keys = [OUTBOX_KEY, *(outbox_entry_key(i) for i in ids)]
        args: list[Any] = [owner, int(lease * 1000), *ids]
        try:
            # Durable: a claim that a replica confirmed means the entry and its once-per-job
            # marker (written before it) are there too, so a failover after the post cannot
            # bring back a job that would post its result a second time.
            flat = cast(list[Any], await self._durable_script("outbox_claim", keys, args))
        except ReplicaWaitTimeout as exc:  # not posted: due again at once, not after the lease
            for job in cast(list[Any], exc.result or [])[::3]:
                await self._settle(str(job), owner, "retry", 0.0)
            raise
        return [
            ClaimedResult(str(flat[i]), str(flat[i + 1]), int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]

    async def renew_result(self, job_id: str, owner: str, lease: float) -> bool:
        return await self._settle(job_id, owner, "renew", lease)

    async def retry_result(self, job_id: str, owner: str, delay: float) -> bool:
        return await self._settle(job_id, owner, "retry", delay)

    async def result_done(self, job_id: str, owner: str) -> bool:
        return await self._settle(job_id, owner, "done", 0.0)

    async def pending_results(self) -> int:
        """Entries not yet delivered (for tests and the status of an outage)."""
        return int(await self.redis.zcard(OUTBOX_KEY))

    async def _settle(self, job_id: str, owner: str, mode: str, seconds: float) -> bool:
        keys = [OUTBOX_KEY, outbox_entry_key(job_id)]
        args: list[str | int] = [owner, job_id, mode, max(1, int(seconds * 1000))]
        return bool(await self._script("outbox_settle")(keys=keys, args=args))
