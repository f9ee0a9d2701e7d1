"""Final results, delivered from the outbox until GitHub takes them.

A job's check-run completion and result comment are recorded in Redis (`record`) before the
job is acknowledged, then posted at once (`deliver`); whatever GitHub did not take (an
outage, a secondary rate limit, a spent budget) or a dead process left behind is posted by
the drain loop of any worker (`run`), with backoff, even after restarts. Exactly once: a job's
result is recorded once, each entry is leased to one poster at a time, and a retry first looks
for the comment's hidden marker on the PR in case an earlier attempt posted it and died before
settling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import structlog

from instruct_lab_bot.adapters.github import GitHubError, QuotaSpent
from instruct_lab_bot.adapters.redis.outbox import ClaimedResult
from instruct_lab_bot.core.final_result import FinalResult, final_result
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.core.retry import RetryPolicy
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import WorkerDeps

log = structlog.get_logger(__name__)

#: Between attempts at one entry: 1 s doubling to 5 minutes, for as long as the entry lives.
OUTBOX_BACKOFF = RetryPolicy(base_delay=1.0, max_delay=300.0)
BATCH = 10
#: A poster that could not renew its claim for this share of the lease gives the entry up.
RENEW_MARGIN = 0.8


class ResultOutbox:
    def __init__(self, deps: WorkerDeps, owner: str) -> None:
        self.deps = deps
        self.owner = owner
        self.lease = deps.settings.lease_timeout

    async def record(self, job: Job, result: JobResult) -> None:
        """Keep the job's final result until it is posted (once per job: a re-run or a
        second report of the same job records nothing more)."""
        final = final_result(job, result)
        redactor = self.deps.redactor
        final = replace(
            final,
            check_run=redactor.value(final.check_run),
            comment=redactor.redact(final.comment),
        )
        payload = final.to_json()
        queue = self.deps.queue
        state = str(result.state)
        put = lambda: queue.put_result(job.id, payload, state)  # noqa: E731
        if not await redis_calls.record("outbox_put", put):
            log.info("job.result_recorded_before", job_id=job.id)

    async def deliver(self, job_id: str) -> None:
        """Post one job's result now, unless another poster holds it or it is not due."""
        try:
            claimed = await self.deps.queue.claim_results(self.owner, self.lease, job_id=job_id)
        except redis_calls.REDIS_ERRORS as exc:
            log.warning("outbox.unavailable", error=repr(exc))
            return
        for entry in claimed:
            await self._post(entry)

    async def drain(self) -> int:
        """Post the results that are due; how many were tried."""
        claimed = await self.deps.queue.claim_results(self.owner, self.lease, count=BATCH)
        for entry in claimed:
            await self._post(entry)
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until `stop`: at once at start (a restarted process picks up what is
        pending), then every heartbeat interval."""
        interval = self.deps.settings.heartbeat_interval
        while not stop.is_set():
            tried = 0
            try:
                tried = await self.drain()
            except redis_calls.REDIS_ERRORS as exc:
                log.warning("outbox.unavailable", error=repr(exc))
            if tried < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)

    async def _post(self, claimed: ClaimedResult) -> None:
        entry = FinalResult.from_json(claimed.payload)
        commenting = asyncio.Event()  # set once the comment's POST may be on its way
        sending = asyncio.create_task(self._send(entry, claimed.attempts, commenting))
        renewing = asyncio.create_task(self._renew(claimed.job_id))
        try:
            await asyncio.wait((sending, renewing), return_when=asyncio.FIRST_COMPLETED)
            if not sending.done() and not commenting.is_set():
                return  # the claim is lost or about to be: stop before posting
            # A POST in flight is seen through, not abandoned: GitHub may take it later, so
            # its poster must look afterwards (`_send_now`: the claim check, `_keep_first`).
            comment_id = await sending
        except GitHubError as exc:
            await self._failed(claimed, exc)
            return
        finally:
            # Not awaited: a renewal cancelled inside redis-py can outlive its cancel (seen in
            # the chaos run, where awaiting it here held the entry for minutes); once the
            # entry is settled a renewal finds it gone and ends by itself.
            renewing.cancel()
            sending.cancel()
        queue = self.deps.queue
        await redis_calls.best_effort(queue.result_done(claimed.job_id, self.owner))
        log.info("job.result_posted", job_id=entry.job_id, attempts=claimed.attempts)
        if comment_id is not None:
            update = queue.update_job(entry.job_id, result_comment_id=comment_id)
            await redis_calls.best_effort(update)

    async def _send(
        self, entry: FinalResult, attempts: int, commenting: asyncio.Event
    ) -> int | None:
        """Complete the check run (idempotent), then comment unless a comment with the
        entry's marker is on the PR already; the new comment's id, if one was posted.
        Bounded: a poster stuck past every GitHub deadline gives the entry back for later,
        rather than holding (and renewing) its claim forever."""
        settings = self.deps.settings
        bound = 2 * (settings.github_retry_deadline + settings.github_timeout)
        try:
            async with asyncio.timeout(bound):
                return await self._send_now(entry, attempts, commenting)
        except TimeoutError:
            log.warning("outbox.post_timed_out", job_id=entry.job_id, after=bound)
            raise GitHubError("posting the result took too long", transient=True) from None

    async def _send_now(
        self, entry: FinalResult, attempts: int, commenting: asyncio.Event
    ) -> int | None:
        gh = self.deps.github.installation(entry.installation_id)
        if entry.check_run_id:
            await gh.update_check_run(entry.pull.repo, entry.check_run_id, entry.check_run)
        suspect = attempts > 1 or entry.recheck  # an earlier poster may have commented
        if suspect and await gh.has_comment_with(entry.pull, entry.marker):
            log.info("job.result_found_posted", job_id=entry.job_id)
            return None
        commenting.set()
        comment_id = await gh.create_comment(entry.pull, entry.comment)
        if suspect or not await self._still_held(entry.job_id):
            return await self._keep_first(entry, comment_id)
        return comment_id

    async def _still_held(self, job_id: str) -> bool:
        """Whether this poster's claim outlived its post (the fencing check, one Redis call):
        if not, another poster may have looked for the marker before this copy existed and
        posted its own, so this one looks last and keeps the oldest copy."""
        try:
            return await self.deps.queue.renew_result(job_id, self.owner, self.lease)
        except redis_calls.REDIS_ERRORS:  # unknown: look, as if lost
            return False

    async def _keep_first(self, entry: FinalResult, posted: int) -> int | None:
        """After a post that raced another poster (a lost claim, a failover): keep the oldest
        comment with the entry's marker and delete the younger copies. Every racer ends on
        the same one, whoever looks last."""
        gh = self.deps.github.installation(entry.installation_id)
        found = await gh.comments_with(entry.pull, entry.marker)
        keep = found[0] if found else posted
        for duplicate in found[1:]:
            log.warning("job.result_duplicate_removed", job_id=entry.job_id, comment=duplicate)
            await gh.delete_comment(entry.pull.repo, duplicate)
        return keep

    async def _failed(self, claimed: ClaimedResult, exc: GitHubError) -> None:
        queue = self.deps.queue
        if not exc.transient:  # GitHub refuses it for good (e.g. the PR or the App is gone)
            log.error("job.result_undeliverable", job_id=claimed.job_id, error=str(exc))
            await redis_calls.best_effort(queue.result_done(claimed.job_id, self.owner))
            return
        delay = OUTBOX_BACKOFF.backoff(claimed.attempts)
        if isinstance(exc, QuotaSpent):  # no try before the installation's quota is back
            delay = max(delay, exc.until - time.time())
        log.warning(
            "job.result_retry",
            job_id=claimed.job_id,
            error=str(exc),
            attempts=claimed.attempts,
            retry_in=round(delay, 2),
        )
        await redis_calls.best_effort(queue.retry_result(claimed.job_id, self.owner, delay))

    async def _renew(self, job_id: str) -> None:
        """Keep the claim while posting takes long (GitHub's retries, budget waits); return
        when it is lost, or could not be renewed for most of the lease (Redis away): another
        poster may take the entry then, so this one stops before it posts a second comment."""
        interval = self.deps.settings.heartbeat_interval
        renewed = time.monotonic()
        while time.monotonic() - renewed < self.lease * RENEW_MARGIN:
            await asyncio.sleep(interval)
            with contextlib.suppress(*redis_calls.REDIS_ERRORS):
                if not await self.deps.queue.renew_result(job_id, self.owner, self.lease):
                    log.warning("outbox.claim_lost", job_id=job_id)
                    return
                renewed = time.monotonic()
        log.warning("outbox.claim_unrenewed", job_id=job_id)
