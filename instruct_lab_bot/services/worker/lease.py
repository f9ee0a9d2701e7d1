"""A running job's lease: renewed by a heartbeat, lost to a takeover, or handed back.

A job's stream entry stays pending for its worker while it runs; the heartbeat resets its
idle time, so only a worker that stopped heartbeating (dead, frozen, cut off) has its job
taken over, after `lease_timeout`. Graceful shutdown hands running jobs back at once instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from instruct_lab_bot.adapters.redis.streams import StreamEntry
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.redis_calls import REDIS_ERRORS
from instruct_lab_bot.services.worker.reporting import Reporter

log = structlog.get_logger(__name__)


@dataclass
class ActiveJob:
    """A job this process runs; `reason` says why it is being stopped early, if it is."""

    job_id: str
    entry: StreamEntry
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""  # "" | "shutdown" | "lease-lost" | "cancelled"

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.cancel.set()


async def heartbeat(deps: WorkerDeps, active: ActiveJob, worker: str) -> None:
    """Renew the lease every `heartbeat_interval` until the job loses it or is cancelled."""
    while True:
        await asyncio.sleep(deps.settings.heartbeat_interval)
        try:
            beat = await deps.queue.heartbeat(active.entry, active.job_id, worker)
        except REDIS_ERRORS as exc:  # keep working; the lease may still hold
            log.warning("job.heartbeat_failed", error=repr(exc))
            continue
        if beat == "ok":
            continue
        active.stop("lease-lost" if beat == "lost" else "cancelled")
        log.info("job.stopping", reason=active.reason)
        return


async def hand_back(deps: WorkerDeps, active: ActiveJob, job: Job, worker: str) -> None:
    """Give the job to another worker now, not after the lease expires."""
    try:
        entry = await deps.queue.hand_back(active.entry, job, worker)
    except REDIS_ERRORS as exc:  # the lease expires and another worker reclaims
        log.warning("job.hand_back_failed", error=repr(exc))
        return
    log.info("job.handed_back", entry=entry)
    await Reporter(deps, job).handed_back()
