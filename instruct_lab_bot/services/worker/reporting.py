"""What a job tells GitHub while it runs: its check run's start, progress and hand-back.

These updates are best effort (a job that is otherwise fine never fails for them). The final
result (check-run completion and comment) goes through the outbox (`outbox`), which keeps it
until GitHub took it.
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
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import JobGitHub, WorkerDeps

log = structlog.get_logger(__name__)


class Reporter:
    """Writes one job's check run while it runs."""

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

    async def _update(self, what: str, payload: dict[str, Any], *, droppable: bool = False) -> None:
        payload = self.deps.redactor.value(payload)  # titles, summaries, the log tail
        await best_effort(
            f"check_run.{what}",
            self.gh.update_check_run(
                self.job.repo_ref, self.job.check_run_id, payload, droppable=droppable
            ),
        )


async def best_effort(what: str, call: Awaitable[None]) -> None:
    """Progress and status updates must never fail a job that is otherwise fine."""
    try:
        await call
    except GitHubError as exc:
        log.warning("github.update_skipped", what=what, error=str(exc))
