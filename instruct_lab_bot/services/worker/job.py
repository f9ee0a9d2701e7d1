"""Execute one job: a fresh workspace, the PR checked out, `ilab` (or the precheck) run, the
outputs uploaded. Every failure becomes a `JobResult` for the PR, never an exception."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

import structlog

from instruct_lab_bot.adapters.git import CheckoutResult, GitError
from instruct_lab_bot.adapters.github import GitHubError, QuotaSpent
from instruct_lab_bot.adapters.storage import StorageError
from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core import messages
from instruct_lab_bot.core.job_outcome import (
    crash_cause,
    precheck_error,
    precheck_state,
    run_error,
    state_from_run,
)
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.core.outputs import Count, summarize
from instruct_lab_bot.core.precheck import Answer
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.run_compare import SampleChange, previous_generate, sample_change
from instruct_lab_bot.services import precheck
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.ilab import JobFailed, run_generate
from instruct_lab_bot.services.worker.model_test import ModelTest
from instruct_lab_bot.services.worker.reporting import Reporter
from instruct_lab_bot.services.worker.train import run_train
from instruct_lab_bot.services.worker.uploads import upload_outputs
from instruct_lab_bot.services.worker.workspace import Workspace

log = structlog.get_logger(__name__)

#: Failures a contributor can act on (or retry): reported on the PR as they are.
REPORTED_FAILURES = (JobFailed, GitError, StorageError, GitHubError)
#: Those that are outages, not the contributor's doing (the reply says so).
_OUTAGES: dict[type[Exception], str] = {
    StorageError: "storage",
    GitHubError: "github",
    QuotaSpent: "github",
}


def status_page_url(public_url: str, job: Job) -> str:
    """The status page of the job's pull request (linked from "not your fault" replies)."""
    return f"{public_url.rstrip('/')}/repos/{job.owner}/{job.repo}/pulls/{job.pr_number}"


class JobExecution:
    """One run of one job, from its workspace to its result."""

    def __init__(self, deps: WorkerDeps, job: Job, cancel: asyncio.Event | None) -> None:
        self.deps = deps
        self.job = job
        self.cancel = cancel
        self.reporter = Reporter(deps, job)
        self.workspace = Workspace(deps.settings.work_dir / job.id)
        self.progress = Progress()
        self.started = time.monotonic()

    async def run(self, worker: str) -> JobResult:
        """Run the job as `worker`; the workspace is removed afterwards, whatever happened."""
        try:
            await self.reporter.started()
            await redis_calls.best_effort(
                self.deps.queue.update_job(self.job.id, ilab_version=str(self.deps.ilab.version))
            )
            log.info("job.started", sha=self.job.head_sha, worker=worker)
            await self.workspace.fresh()
            if self.job.command == "train":  # needs no checkout: it trains on stored data
                return await run_train(self)
            checkout = await self._checkout()
            self.workspace.out_dir.mkdir()
            if self._cancelled():
                return JobResult(state=State.CANCELLED, duration=self._elapsed())
            if self.job.command == "precheck":
                return await self._precheck(checkout)
            if self.job.command == "test":
                return await self._model_test().run(checkout.path, self._elapsed)
            return await self._generate(checkout)
        except REPORTED_FAILURES as exc:
            cause = _OUTAGES.get(type(exc), "")
            if cause:  # an admin's problem: logged at error level, which alerts watch
                log.error("job.infrastructure_failure", cause=cause, error=str(exc))
            else:
                log.warning("job.failed", error=str(exc))
            return JobResult(
                state=State.FAILED,
                duration=self._elapsed(),
                error=str(exc),
                log_tail=self.progress.last_lines(messages.FAILURE_LOG_LINES),
                infrastructure=cause,
                status_url=status_page_url(self.deps.settings.public_url, self.job),
            )
        finally:
            await self.workspace.remove()

    async def _checkout(self) -> CheckoutResult:
        token = None
        if self.deps.settings.github_git_url.startswith(("http://", "https://")):
            token = await self.deps.github.token(self.job.installation_id)
        with span("git.fetch", sha=self.job.head_sha):
            return await self.deps.tools.fetch(
                self.deps.settings, self.job, self.workspace.taxonomy, token
            )

    async def _generate(self, checkout: CheckoutResult) -> JobResult:
        progress = self.progress
        run, command_line = await run_generate(
            self.deps, self.reporter, checkout, self.workspace, progress, self.cancel
        )
        state = state_from_run(run.outcome, run.exit_code)
        crashed = crash_cause(state, run.exit_code)
        if crashed:
            log.error("job.infrastructure_failure", cause=crashed, exit_code=run.exit_code)
        summary = await asyncio.to_thread(summarize, self.workspace.out_dir)
        generated = summary.generated if state is State.SUCCEEDED else None
        artifacts, index_url = await upload_outputs(
            self.deps, self.job, self.workspace.out_dir, self.workspace.log_path
        )
        return JobResult(
            state=state,
            duration=self._elapsed(),
            exit_code=run.exit_code,
            error=run_error(state, run.exit_code, progress.error),
            generated=generated,
            discarded=progress.discarded,
            samples=summary.samples,
            per_leaf=summary.per_leaf,
            per_file=summary.per_file,
            change=await self._change(summary.per_leaf, generated),
            command_line=command_line,
            artifacts=artifacts,
            index_url=index_url,
            log_tail=progress.last_lines(messages.FAILURE_LOG_LINES),
            infrastructure=crashed,
            status_url=status_page_url(self.deps.settings.public_url, self.job) if crashed else "",
        )

    async def _precheck(self, checkout: CheckoutResult) -> JobResult:
        """Ask the model each seed question; compare with the contributor's answers."""
        files = [f for f in self.job.files.split(",") if f]
        seeds = await asyncio.to_thread(precheck.read_seeds, checkout.path, files)
        with span("precheck.ask", questions=len(seeds)):
            answers = await precheck.ask_all(
                self.deps.settings,
                seeds,
                cwd=checkout.path,
                workspace=self.workspace.root,
                cancel=self.cancel,
                profile=self.deps.ilab.profile,
            )
        answers = [self._redacted(answer) for answer in answers]
        out_dir = self.workspace.out_dir
        await asyncio.to_thread(precheck.write_results, out_dir, answers)
        state = precheck_state(self._cancelled(), [a.answer for a in answers])
        artifacts, index_url = await upload_outputs(self.deps, self.job, out_dir, None)
        return JobResult(
            state=state,
            duration=self._elapsed(),
            error=precheck_error(state, [a.error for a in answers]),
            artifacts=artifacts,
            index_url=index_url,
            precheck=tuple(answers),
        )

    async def _change(
        self, per_leaf: Sequence[Count], generated: int | None
    ) -> SampleChange | None:
        """Samples gained and lost since the PR's previous successful generate, if any (none
        while Redis is away: a comparison is not worth holding the result back)."""
        if generated is None:
            return None
        queue = self.deps.queue
        try:
            jobs = await queue.get_jobs(await queue.pr_job_ids(self.job.pull_request))
        except redis_calls.REDIS_ERRORS:
            return None
        previous = previous_generate(jobs, self.job)
        return sample_change(previous, per_leaf, generated) if previous else None

    def _redacted(self, answer: Answer) -> Answer:
        """An answer as it may be shown: the model's text and errors are ilab output too."""
        redact = self.deps.redactor.redact
        return replace(answer, answer=redact(answer.answer), error=redact(answer.error))

    def _model_test(self) -> ModelTest:
        args = (self.workspace, self.reporter, self.progress, self.cancel)
        return ModelTest(self.deps, self.job, *args)

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _elapsed(self) -> float:
        return time.monotonic() - self.started
