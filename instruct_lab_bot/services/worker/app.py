"""The worker process: `open_worker` wires it; `Worker` runs each stream entry to an end state.

Per job: claim it atomically (queued → running), execute it under a renewed lease, record
its final result in the outbox, then store the end state and acknowledge the entry in one
step, then post the result (the outbox's drain loop retries what GitHub did not take).
Anything that goes wrong becomes a clear `failure` on the PR rather than a silent loss; the
entry is acknowledged only after the end state and the result to post are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import aiohttp
import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github import build_github_app
from instruct_lab_bot.adapters.ilab_version import admin_config, detect_ilab
from instruct_lab_bot.adapters.redis.keys import WORKER_GROUP
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import StreamEntry, consumer_name
from instruct_lab_bot.adapters.redis.write_budget import WriteBudget
from instruct_lab_bot.adapters.sandbox import check_sandbox, process_runner
from instruct_lab_bot.adapters.storage import link_signing_key, open_store
from instruct_lab_bot.adapters.tracing import continue_trace, record_span, span
from instruct_lab_bot.core import messages
from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.ilab import IlabRelease, with_ilab_config
from instruct_lab_bot.core.jobs import CONCLUSIONS, Job, State
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.core.run_compare import leaf_counts_json
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.metrics import WorkerMetrics
from instruct_lab_bot.services.serving.ilab_launcher import serve_models
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.consumer import Consumer
from instruct_lab_bot.services.worker.deps import JobTools, WorkerDeps
from instruct_lab_bot.services.worker.job import JobExecution, status_page_url
from instruct_lab_bot.services.worker.lease import ActiveJob, hand_back, heartbeat
from instruct_lab_bot.services.worker.outbox import ResultOutbox

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def open_worker(
    settings: Settings,
    *,
    concurrency: int = 1,
    name: str | None = None,
    metrics: WorkerMetrics | None = None,
) -> AsyncIterator[Worker]:
    """A worker with its Redis pool, HTTP session and artifact store, closed on exit.

    Refuses to start (SandboxUnavailable, naming the fix) when ilab's sandbox cannot work,
    and (UnsupportedIlab) when `ilab --version` names no supported release.
    """
    warning = await check_sandbox(settings)
    if warning:
        log.warning("sandbox.off", warning=warning)
    settings, release = await prepare_ilab(settings)
    metrics = metrics or WorkerMetrics()
    metrics.ilab_detected(str(release.version), release.profile.name)
    queue = Queue.from_settings(settings)
    link_key = link_signing_key(settings, queue.shared_link_key)
    store = open_store(
        parse_artifacts_url(settings.artifacts_url),
        public_url=settings.public_url,
        signing_key=link_key,
        link_expiry=settings.link_expiry,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    timeout = aiohttp.ClientTimeout(total=settings.github_timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            budget = WriteBudget(
                queue.redis, limit=settings.github_write_limit, window=settings.github_write_window
            )
            github = build_github_app(session, settings, budget, on_response=metrics.github.observe)
            metrics.github.watch_quota(lambda: github.quota.waiting)
            tools = JobTools(run=process_runner(settings))
            deps = WorkerDeps(
                settings, queue, github, store, metrics, tools, link_key=link_key, ilab=release
            )
            yield Worker(deps, concurrency=concurrency, name=name)
    finally:
        try:
            await store.aclose()
        finally:
            await queue.aclose()


async def prepare_ilab(settings: Settings) -> tuple[Settings, IlabRelease]:
    """The worker's ilab release (UnsupportedIlab if none it may drive) and the settings that
    give it a configuration in each job's fresh HOME (`--config DEFAULT` unless the admin's)."""
    release = await detect_ilab(settings)
    if release.supported:
        log.info("ilab.detected", ilab_version=str(release.version), profile=release.profile.name)
    else:
        log.warning(
            "ilab.unsupported",
            ilab_version=str(release.version),
            profile=release.profile.name,
            warning="ILAB_BOT_ILAB_ALLOW_UNSUPPORTED: driving it like the nearest supported line",
        )
    configured = admin_config(settings)
    settings = with_ilab_config(settings, admin_config=configured is not None)
    log.info(
        "ilab.config", config=str(configured) if configured else " ".join(settings.ilab_command)
    )
    return settings, release


class Worker:
    """Runs jobs from the `jobs` stream, each under a lease it renews while the job runs.

    `execute`, `finish` and `_report` are the steps a variant may replace (the benchmark's
    worker runs a no-op job body and reports nothing).
    """

    def __init__(self, deps: WorkerDeps, *, concurrency: int = 1, name: str | None = None) -> None:
        deps.metrics.concurrency.set(concurrency)
        self.deps = deps
        self.settings = deps.settings
        self.name = name or consumer_name()
        self.consumer = Consumer(deps, self.name, concurrency, self._take)
        self.outbox = ResultOutbox(deps, self.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until `stop` is set, then drain running ones; meanwhile post the final
        results still pending in the outbox."""
        await asyncio.gather(
            self.consumer.run(stop),
            self.outbox.run(stop),
            serve_models(self.deps, self.name, stop),  # the `local` serving backend's models
        )

    async def _take(self, entry: StreamEntry, takeover: bool) -> None:
        await self.process(entry, takeover=takeover)

    async def process(self, entry: StreamEntry, *, takeover: bool = False) -> None:
        """Claim the entry's job and run it to an end state, or settle a job not to run."""
        queue = self.deps.queue
        job_id = entry.fields.get("job", "")
        started = await queue.start_job(
            job_id,
            self.name,
            max_attempts=self.settings.max_deliveries,
            takeover=takeover,
            lease=self.settings.lease_timeout,
        )
        job = started.job
        if job is None:  # expired or never stored: nothing to run
            await queue.ack(entry, WORKER_GROUP)
        elif started.status == "exhausted":
            await self._dead_letter(entry, job)
        elif started.status == "recorded" and started.recorded is not None:
            await self._end_recorded(entry, job, started.recorded)
        elif not started.ok:
            log.info("job.skipped", job_id=job_id, state=str(started.previous), takeover=takeover)
            if not takeover:  # ended, or running under its own entry: this one is a duplicate
                await queue.ack(entry, WORKER_GROUP)
        else:
            await self._run_leased(ActiveJob(job_id, entry), job, takeover)

    async def _end_recorded(self, entry: StreamEntry, job: Job, state: State) -> None:
        """A job whose result was recorded, but whose end state a Redis failover lost: end it
        with the recorded state instead of running it again (which would reopen its check run
        with a result that is never posted), and see that its result goes out."""
        log.warning("job.end_state_restored", job_id=job.id, state=str(state))
        queue = self.deps.queue
        end = lambda: queue.finish_job(entry, job, self.name, state, finished_at=time.time())  # noqa: E731
        await redis_calls.record("finish_job", end)
        await self.outbox.deliver(job.id)

    async def _run_leased(self, active: ActiveJob, job: Job, takeover: bool) -> None:
        """Execute the job while a heartbeat renews its lease; hand it back if interrupted."""
        metrics = self.deps.metrics
        self.consumer.active[job.id] = active
        beating = asyncio.create_task(heartbeat(self.deps, active, self.name))
        metrics.jobs_started.labels(job.command).inc()
        metrics.queue_wait.labels(job.command).observe(max(0.0, job.started_at - job.created_at))
        metrics.busy.inc()
        with self._job_context(job):
            try:
                if takeover:
                    log.info("job.taken_over", attempt=job.attempts)
                result = await self.execute(job, active.cancel)
                await self._conclude(active, job, result)
            except asyncio.CancelledError:
                await asyncio.shield(hand_back(self.deps, active, job, self.name))
                raise
            finally:
                beating.cancel()
                del self.consumer.active[job.id]
                metrics.busy.dec()

    @contextlib.contextmanager
    def _job_context(self, job: Job) -> Iterator[None]:
        """The job's log fields and trace span (continuing the dispatcher's trace)."""
        pr = job.pull_request
        with (
            structlog.contextvars.bound_contextvars(
                job_id=job.id, repo=pr.repo.full_name, pr=pr.number, command=job.command
            ),
            continue_trace(job.traceparent),
            span(
                "job",
                job_id=job.id,
                repo=pr.repo.full_name,
                pr=pr.number,
                command=job.command,
                attempt=job.attempts,
                worker=self.name,
            ),
        ):
            record_span("queue.wait", job.created_at, job.started_at, job_id=job.id)
            yield

    async def _conclude(self, active: ActiveJob, job: Job, result: JobResult) -> None:
        """Store the end state, unless the job was stopped to be run elsewhere."""
        if active.reason == "lease-lost":
            log.warning("job.lease_lost")
            return
        if active.reason == "shutdown":
            await hand_back(self.deps, active, job, self.name)
            return
        if active.reason == "cancelled":
            asked = await self.deps.queue.get_job(job.id)
            who = asked.cancel_requested if asked else ""
            result = replace(result, state=State.CANCELLED, cancelled_by=who)
        await self.finish(active.entry, job, result)

    async def execute(self, job: Job, cancel: asyncio.Event | None = None) -> JobResult:
        """Run the job; every failure becomes a `JobResult`, never an exception."""
        return await JobExecution(self.deps, job, cancel).run(self.name)

    async def finish(self, entry: StreamEntry, job: Job, result: JobResult) -> None:
        """Record the final result, store the end state and acknowledge in one step, then
        post the result on GitHub."""
        job = await self._with_run_facts(job)
        await self._report(job, result)
        fields = {
            "finished_at": time.time(),
            "error": self.deps.redactor.redact(result.error)[:2000],
            "index_url": result.index_url,
            "generated": -1 if result.generated is None else result.generated,
            "leaf_counts": leaf_counts_json(result.per_leaf),
            "command_line": result.command_line,
            "artifact_names": "\n".join(a.name for a in result.artifacts),
        }
        queue = self.deps.queue
        stored = await redis_calls.record(
            "finish_job",
            lambda: queue.finish_job(entry, job, self.name, result.state, **fields),
        )
        metrics = self.deps.metrics
        metrics.jobs_completed.labels(job.command, CONCLUSIONS[result.state]).inc()
        metrics.job_duration.labels(job.command).observe(result.duration)
        log.info(
            "job.finished",
            state=str(result.state),
            duration=round(result.duration, 3),
            stored=stored,
        )
        await self.outbox.deliver(job.id)

    async def _with_run_facts(self, job: Job) -> Job:
        """The job with the facts recorded on its hash while it ran (ilab version, teacher,
        pipeline: the reply renders whichever are there)."""
        try:
            facts = await self.deps.queue.run_facts(job.id)
        except (RedisError, OSError) as exc:
            log.warning("job.facts_unread", error=str(exc))
            return job
        return job.evolve(**facts) if facts else job

    async def _report(self, job: Job, result: JobResult) -> None:
        """Record the check-run completion and the comment in the outbox, once per job
        however often it is re-run or reported."""
        await self.outbox.record(job, result)

    async def _dead_letter(self, entry: StreamEntry, job: Job) -> None:
        reason = messages.dead_letter(job, job.attempts)
        log.error("job.dead_letter", job_id=job.id, attempts=job.attempts)
        status = status_page_url(self.deps.settings.public_url, job)
        result = JobResult(
            state=State.DEAD,
            duration=job.duration,
            error=reason,
            infrastructure="worker",
            status_url=status,
        )
        await self._report(job, result)
        queue = self.deps.queue
        await redis_calls.record("dead_letter", lambda: queue.dead_letter(entry, job, reason))
        await self.outbox.deliver(job.id)
