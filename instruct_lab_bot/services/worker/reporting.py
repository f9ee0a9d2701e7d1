"""What a job tells GitHub while it runs: its check run's start, progress and hand-back.

These updates are best effort (a job that is otherwise fine never fails for them). The final
result (check-run completion and comment) goes through the outbox (`outbox`), which keeps it
until GitHub took it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from instruct_lab_bot.adapters.github import GitHubError
from instruct_lab_bot.core import messages
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import JobGitHub, WorkerDeps

log = structlog.get_logger(__name__)


#: A change within one stage (its percent, ETA, log tail) waits this many progress intervals
#: since the last update; a new stage shows at the next interval. A 10-minute job at the
#: 30 s interval then makes about 10 progress writes instead of 20 (issue 17: <= 25 calls).
SAME_STAGE_INTERVALS = 2
#: A stage whose bar reached 100 % waits this many: the next stage or the completion, which
#: usually come within moments, show it done anyway (no update right before the completion).
DONE_STAGE_INTERVALS = 4


@dataclass(frozen=True)
class Snapshot:
    """What a job's check run would show now, and what the policy needs to know of it."""

    payload: dict[str, Any]  # the check-run update, redacted
    stage: str | None  # a change within the same stage waits (`SAME_STAGE_INTERVALS`)
    full: bool  # the stage's bar is full (`DONE_STAGE_INTERVALS`)
    job_fields: dict[str, Any]  # the job record's progress fields for `ilab-bot jobs`


class ProgressView(Protocol):
    """One kind of job's progress as its check run shows it (generate's `Progress`, train's
    numbers and loss curve): `Reporter.follow_view` decides when it goes to GitHub."""

    def lines_seen(self) -> int:
        """Output lines taken so far: no new line, nothing new to look at."""
        ...

    async def snapshot(self) -> Snapshot: ...


#: Called at the start of every interval before the progress is looked at (train uploads
#: finished checkpoints there).
Tick = Callable[[], Awaitable[None]]


class Reporter:
    """Writes one job's check run while it runs."""

    def __init__(self, deps: WorkerDeps, job: Job) -> None:
        self.deps = deps
        self.job = job
        self.gh: JobGitHub = deps.github.installation(job.installation_id)
        self._shown: object = None  # the check run's output as GitHub last took it
        # The stage that output showed; before any, `Progress`'s own placeholder, which says
        # no more than `started` did.
        self._stage: str | None = Progress().stage

    async def started(self) -> None:
        # droppable: the first progress update says "in progress" anyway
        await self._update("start", messages.check_run_started(self.job), droppable=True)

    async def follow(self, progress: Progress, stop: asyncio.Event) -> None:
        """`follow_view` for a generate or model-test job's `Progress`."""
        await self.follow_view(_ProgressView(self.deps, self.job, progress), stop)

    async def follow_view(
        self, view: ProgressView, stop: asyncio.Event, each_interval: Tick | None = None
    ) -> None:
        """Until `stop`: at most one update per interval (after `each_interval`, if given),
        only when what the check run shows (title, summary, log tail, image as rendered)
        changed, and a change within the same stage only every `SAME_STAGE_INTERVALS`
        (`DONE_STAGE_INTERVALS` once its bar is full). A write the budget skipped is tried
        again at the next interval with the newest snapshot (coalesced, never queued). What
        is pending when `stop` comes is not sent: the completion that follows supersedes it."""
        last_seen, waited = -1, 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.deps.settings.progress_interval)
            waited += 1
            if stop.is_set():
                continue
            if each_interval is not None:
                await each_interval()
            seen = view.lines_seen()
            if seen == last_seen:
                continue
            shot = await view.snapshot()
            if shot.payload["output"] == self._shown:
                last_seen = seen  # new lines, nothing new to show
                self._skipped("unchanged")
            elif shot.stage == self._stage and waited < _spacing(shot):
                self._skipped("spaced")  # looked at again next interval, with what came since
            elif await self._progress(shot):
                last_seen, waited = seen, 0
            else:
                self._skipped("budget")

    def _skipped(self, reason: str) -> None:
        self.deps.metrics.github.progress_skipped.labels(reason).inc()

    async def _progress(self, shot: Snapshot) -> bool:
        """Send one progress snapshot; whether GitHub took it."""
        sent = await best_effort_sent(
            "check_run.progress",
            self.gh.update_check_run(
                self.job.repo_ref, self.job.check_run_id, shot.payload, droppable=True
            ),
        )
        if sent:
            self._shown, self._stage = shot.payload["output"], shot.stage
        await redis_calls.best_effort(self.deps.queue.update_job(self.job.id, **shot.job_fields))
        return sent

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


class _ProgressView:
    """A generate or model-test job's `Progress` as its check run shows it."""

    def __init__(self, deps: WorkerDeps, job: Job, progress: Progress) -> None:
        self.deps, self.job, self.progress = deps, job, progress

    def lines_seen(self) -> int:
        return self.progress.lines_seen

    async def snapshot(self) -> Snapshot:
        progress = self.progress
        payload = self.deps.redactor.value(messages.check_run_progress(self.job, progress))
        fields = {"progress": progress.percent or 0, "stage": messages.progress_title(progress)}
        return Snapshot(payload, progress.stage, progress.percent == 100, fields)


def _spacing(shot: Snapshot) -> int:
    """Intervals a change within the current stage waits since the last update."""
    return DONE_STAGE_INTERVALS if shot.full else SAME_STAGE_INTERVALS


async def best_effort(what: str, call: Awaitable[object]) -> None:
    """Progress and status updates must never fail a job that is otherwise fine."""
    await best_effort_sent(what, call)


async def best_effort_sent(what: str, call: Awaitable[object]) -> bool:
    """`best_effort`, and whether the write went out (False: failed, or the budget skipped
    it)."""
    try:
        return await call is not False
    except GitHubError as exc:
        log.warning("github.update_skipped", what=what, error=str(exc))
        return False
