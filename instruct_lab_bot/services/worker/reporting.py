"""What a job tells GitHub: its check run while it runs, and its result once at the end.

Check-run updates are best effort (a job that is otherwise fine never fails for them); the
result comment is posted at most once per job, however often the job is re-run or reported,
through a claim-once marker in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

import structlog

from instruct_lab_bot.adapters.github import GitHubError
from instruct_lab_bot.core import messages
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import JobGitHub, WorkerDeps

log = structlog.get_logger(__name__)


class Reporter:
    """Writes one job's check run and result comment."""

    def __init__(self, deps: WorkerDeps, job: Job) -> None:
        self.deps = deps
        self.job = job
        self.gh: JobGitHub = deps.github.installation(job.installation_id)

    async def started(self) -> None:
        # droppable: the first progress update says "in progress" anyway
        await self._update("start", messages.check_run_started(self.job), droppable=True)

    async def follow(self, progress: Progress, stop: asyncio.Event) -> None:
        """Until `stop`: at most one update per interval, only when something changed."""
        last_seen = -1
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.deps.settings.progress_interval)
            if stop.is_set() or progress.lines_seen == last_seen:
                continue
            last_seen = progress.lines_seen
            await self._update(
                "progress", messages.check_run_progress(self.job, progress), droppable=True
            )
            await redis_calls.best_effort(
                self.deps.queue.update_job(
                    self.job.id,
                    progress=progress.percent or 0,
                    stage=messages.progress_title(progress),
                )
            )

    async def handed_back(self) -> None:
        await self._update("requeued", messages.check_run_handed_back(self.job))

    async def result(self, result: JobResult) -> None:
        """Complete the check run and comment once, however often this job is re-run."""
        await self._update("complete", messages.check_run_completed(self.job, result))
        marker = f"result:{self.job.id}"
        queue = self.deps.queue
        if not await redis_calls.record("claim_once", lambda: queue.claim_once(marker)):
            return
        pr = self.job.pull_request
        body = self.deps.redactor.redact(messages.result_comment(self.job, result))
        try:
            comment_id = await self.gh.create_comment(pr.owner, pr.name, pr.number, body)
        except GitHubError as exc:
            await redis_calls.record("release_once", lambda: queue.release_once(marker))
            log.error("job.comment_failed", error=str(exc))
            return
        await redis_calls.best_effort(queue.update_job(self.job.id, result_comment_id=comment_id))

    async def _update(self, what: str, payload: dict[str, Any], *, droppable: bool = False) -> None:
        pr = self.job.pull_request
        payload = self.deps.redactor.value(payload)  # titles, summaries, the log tail
        await best_effort(
            f"check_run.{what}",
            self.gh.update_check_run(
                pr.owner, pr.name, self.job.check_run_id, payload, droppable=droppable
            ),
        )


async def best_effort(what: str, call: Awaitable[None]) -> None:
    """Progress and status updates must never fail a job that is otherwise fine."""
    try:
        await call
    except GitHubError as exc:
        log.warning("github.update_skipped", what=what, error=str(exc))
