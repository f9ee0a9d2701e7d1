"""Worker: takes jobs from the stream and runs them to an end state.

Per job: claim it atomically (queued → running), check out the PR, run `ilab data generate`
with the log streamed into the check run, upload the outputs, complete the check run, comment
once, then acknowledge. Anything that goes wrong becomes a clear `failure` on the PR rather
than a silent loss; the stream entry is acknowledged only after the end state is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TypeVar

import aiohttp
import structlog
from redis.exceptions import RedisError

from instruct_lab_bot import __version__
from instruct_lab_bot.adapters.git import (
    CheckoutRequest,
    CheckoutResult,
    GitError,
    checkout_pull_request,
)
from instruct_lab_bot.adapters.github import (
    GitHubApp,
    GitHubError,
    Installation,
    build_github_app,
)
from instruct_lab_bot.adapters.redis.queue import (
    JOBS_STREAM,
    WORKER_GROUP,
    Queue,
    StreamEntry,
    consumer_name,
)
from instruct_lab_bot.adapters.runner import RunLimits, RunResult, run_streaming, scrub_env
from instruct_lab_bot.adapters.storage import ArtifactStore, StorageError, open_store
from instruct_lab_bot.adapters.tracing import continue_trace, record_span, span
from instruct_lab_bot.core import messages
from instruct_lab_bot.core.artifacts import (
    guess_content_type,
    parse_artifacts_url,
    render_index_html,
)
from instruct_lab_bot.core.jobs import CONCLUSIONS, Job, State
from instruct_lab_bot.core.messages import Artifact, JobResult
from instruct_lab_bot.core.outputs import list_files, summarize
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services import precheck
from instruct_lab_bot.services.metrics import WorkerMetrics

log = structlog.get_logger(__name__)
T = TypeVar("T")

LOG_NAME = "ilab.log"


class JobFailed(Exception):
    """A failure to report on the PR as-is (its message is written for contributors)."""


def generate_argv(settings: Settings, taxonomy: Path, base_ref: str, out_dir: Path) -> list[str]:
    """The `ilab data generate` argv. Only paths and configured args: no PR text ever."""
    return [
        *settings.ilab_command,
        "data",
        "generate",
        "--taxonomy-path",
        str(taxonomy),
        "--taxonomy-base",
        base_ref,
        "--output-dir",
        str(out_dir),
        *settings.generate_args,
    ]


@contextlib.asynccontextmanager
async def open_worker(
    settings: Settings,
    *,
    concurrency: int = 1,
    name: str | None = None,
    metrics: WorkerMetrics | None = None,
) -> AsyncIterator[Worker]:
    """A worker with its Redis pool, HTTP session and artifact store, closed on exit."""
    metrics = metrics or WorkerMetrics()
    queue = Queue.from_url(settings.redis_url, history_ttl=settings.job_history_ttl)
    store = open_store(
        parse_artifacts_url(settings.artifacts_url),
        public_url=settings.public_url,
        signing_key=settings.signing_key,
        link_expiry=settings.link_expiry,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    timeout = aiohttp.ClientTimeout(total=settings.github_timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            github = build_github_app(
                session, settings, queue.redis, on_response=metrics.github.observe
            )
            yield Worker(
                settings, queue, github, store, concurrency=concurrency, name=name, metrics=metrics
            )
    finally:
        try:
            await store.aclose()
        finally:
            await queue.aclose()


@dataclass
class ActiveJob:
    """A job this process runs; `reason` says why it is being stopped early, if it is."""

    job_id: str
    entry: StreamEntry
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""  # "" | "shutdown" | "lease-lost" | "cancelled"


class Worker:
    """Runs jobs from the `jobs` stream under a lease it renews while the job runs.

    A job's entry stays pending for this consumer while it runs; the heartbeat resets its idle
    time, so only a worker that stopped heartbeating (dead, frozen, cut off) has its job taken
    over, after `lease_timeout`. Graceful shutdown hands running jobs back at once instead.
    """

    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        github: GitHubApp,
        store: ArtifactStore,
        *,
        concurrency: int = 1,
        name: str | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.metrics = metrics or WorkerMetrics()
        self.metrics.concurrency.set(concurrency)
        self.settings = settings
        self.queue = queue
        self.github = github
        self.store = store
        self.concurrency = concurrency
        self.name = name or consumer_name()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: dict[str, ActiveJob] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until `stop` is set, then drain (see `_drain`)."""
        backoff = 0.5
        next_reclaim = 0.0
        log.info("worker.started", worker=self.name, concurrency=self.concurrency)
        background = [
            asyncio.create_task(self._announce(stop)),
            asyncio.create_task(self.metrics.queue.run(self.queue, stop)),
        ]
        groups_ready = False
        while await self._take_slot(stop):
            try:
                if not groups_ready:  # at start, and again after Redis came back
                    await self.queue.ensure_groups()
                    groups_ready = True
                entries: list[StreamEntry] = []
                takeover = False
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + self.settings.heartbeat_interval
                    entries = await self.queue.claim_stale(
                        JOBS_STREAM,
                        WORKER_GROUP,
                        self.name,
                        int(self.settings.lease_timeout * 1000),
                        count=1,
                    )
                    takeover = bool(entries)
                if not entries:
                    entries = await self.queue.read(
                        JOBS_STREAM, WORKER_GROUP, self.name, count=1, block_ms=1000
                    )
                backoff = 0.5
            except (RedisError, OSError) as exc:
                self._slots.release()
                groups_ready = False  # a restarted Redis without AOF has lost them
                log.warning("worker.redis_error", error=repr(exc), retry_in=backoff)
                await _sleep_jitter(backoff, stop)
                backoff = min(backoff * 2, 30.0)
                continue
            if not entries:
                self._slots.release()
                continue
            task = asyncio.create_task(self._process_and_release(entries[0], takeover))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self._drain()
        await asyncio.gather(*background, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self.queue.unregister_worker(self.name)
        log.info("worker.stopped", worker=self.name)

    async def _announce(self, stop: asyncio.Event) -> None:
        """Keep this worker's registration (status page, `workers_live`) alive while it runs."""
        info = {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "version": __version__,
            "concurrency": str(self.concurrency),
            "started_at": repr(time.time()),
        }
        while not stop.is_set():
            info["jobs"] = ",".join(sorted(self._active))
            with contextlib.suppress(RedisError, OSError):
                await self.queue.register_worker(
                    self.name, info, ttl=3 * self.settings.heartbeat_interval
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.heartbeat_interval)

    async def _take_slot(self, stop: asyncio.Event) -> bool:
        """Wait for a free slot; False once `stop` is set (no new job is taken)."""
        if stop.is_set():
            return False
        slot = asyncio.ensure_future(self._slots.acquire())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait((slot, stopped), return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if stop.is_set():
            if slot.done() and not slot.cancelled():
                self._slots.release()
            slot.cancel()
            return False
        return True

    async def _drain(self) -> None:
        """Let running jobs finish within the shutdown grace, then hand them back."""
        if not self._tasks:
            return
        log.info("worker.draining", jobs=len(self._tasks), grace=self.settings.shutdown_grace)
        _done, pending = await asyncio.wait(self._tasks, timeout=self.settings.shutdown_grace)
        if not pending:
            return
        for active in self._active.values():
            active.reason = "shutdown"
            active.cancel.set()
        _done, pending = await asyncio.wait(pending, timeout=self.settings.kill_grace + 10)
        for task in pending:  # stuck outside the subprocess (git, upload): cancel outright
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _process_and_release(self, entry: StreamEntry, takeover: bool) -> None:
        try:
            await self.process(entry, takeover=takeover)
        except Exception:
            log.exception("worker.job_crashed", entry=entry.id)
        finally:
            self._slots.release()

    async def process(self, entry: StreamEntry, *, takeover: bool = False) -> None:
        job_id = entry.fields.get("job", "")
        started = await self.queue.start_job(
            job_id,
            self.name,
            max_attempts=self.settings.max_deliveries,
            takeover=takeover,
            lease=self.settings.lease_timeout,
        )
        job = started.job
        if job is None:  # expired or never stored: nothing to run
            await self.queue.ack(entry, WORKER_GROUP)
            return
        if started.status == "exhausted":
            await self._dead_letter(entry, job)
            return
        if not started.ok:
            log.info("job.skipped", job_id=job_id, state=str(started.previous), takeover=takeover)
            if not takeover:  # ended, or running under its own entry: this one is a duplicate
                await self.queue.ack(entry, WORKER_GROUP)
            return
        active = ActiveJob(job_id, entry)
        self._active[job_id] = active
        heartbeat = asyncio.create_task(self._heartbeat(active))
        self.metrics.jobs_started.labels(job.command).inc()
        self.metrics.queue_wait.labels(job.command).observe(
            max(0.0, job.started_at - job.created_at)
        )
        self.metrics.busy.inc()
        with (
            structlog.contextvars.bound_contextvars(
                job_id=job.id, repo=job.repo_full_name, pr=job.pr_number, command=job.command
            ),
            continue_trace(job.traceparent),
            span(
                "job",
                job_id=job.id,
                repo=job.repo_full_name,
                pr=job.pr_number,
                command=job.command,
                attempt=job.attempts,
                worker=self.name,
            ),
        ):
            record_span("queue.wait", job.created_at, job.started_at, job_id=job.id)
            try:
                if takeover:
                    log.info("job.taken_over", attempt=job.attempts)
                result = await self.execute(job, active.cancel)
                if active.reason == "lease-lost":
                    log.warning("job.lease_lost")
                elif active.reason == "shutdown":
                    await self._hand_back(active, job)
                else:
                    if active.reason == "cancelled":
                        asked = await self.queue.get_job(job.id)
                        who = asked.cancel_requested if asked else ""
                        result = replace(result, state=State.CANCELLED, cancelled_by=who)
                    await self.finish(entry, job, result)
            except asyncio.CancelledError:
                await asyncio.shield(self._hand_back(active, job))
                raise
            finally:
                heartbeat.cancel()
                del self._active[job_id]
                self.metrics.busy.dec()

    async def _heartbeat(self, active: ActiveJob) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                beat = await self.queue.heartbeat(active.entry, active.job_id, self.name)
            except (RedisError, OSError) as exc:  # keep working; the lease may still hold
                log.warning("job.heartbeat_failed", error=repr(exc))
                continue
            if beat == "ok":
                continue
            active.reason = "lease-lost" if beat == "lost" else "cancelled"
            log.info("job.stopping", reason=active.reason)
            active.cancel.set()
            return

    async def _hand_back(self, active: ActiveJob, job: Job) -> None:
        """Give the job to another worker now, not after the lease expires."""
        try:
            entry = await self.queue.hand_back(active.entry, job, self.name)
        except (RedisError, OSError) as exc:  # the lease expires and another worker reclaims
            log.warning("job.hand_back_failed", error=repr(exc))
            return
        log.info("job.handed_back", entry=entry)
        gh = self.github.installation(job.installation_id)
        await _best_effort(
            "check_run.requeued",
            gh.update_check_run(
                job.owner, job.repo, job.check_run_id, messages.check_run_handed_back(job)
            ),
        )

    async def _dead_letter(self, entry: StreamEntry, job: Job) -> None:
        reason = messages.dead_letter(job, job.attempts)
        log.error("job.dead_letter", job_id=job.id, attempts=job.attempts)
        result = JobResult(state=State.DEAD, duration=job.duration, error=reason)
        await self._report(job, result)
        await _retry_redis("dead_letter", lambda: self.queue.dead_letter(entry, job, reason))

    async def execute(self, job: Job, cancel: asyncio.Event | None = None) -> JobResult:
        """Run the job; every failure becomes a `JobResult`, never an exception."""
        gh = self.github.installation(job.installation_id)
        workspace = self.settings.work_dir / job.id
        progress = Progress()
        started = time.monotonic()
        try:
            await _best_effort(
                "check_run.start",
                gh.update_check_run(
                    job.owner,
                    job.repo,
                    job.check_run_id,
                    messages.check_run_started(job),
                    droppable=True,  # the first progress update says "in progress" anyway
                ),
            )
            log.info("job.started", sha=job.head_sha, worker=self.name)
            if workspace.exists():
                await asyncio.to_thread(shutil.rmtree, workspace)
            workspace.mkdir(parents=True)
            checkout = await self._checkout(job, workspace)
            out_dir = workspace / "out"
            out_dir.mkdir()
            log_path = workspace / LOG_NAME
            if cancel is not None and cancel.is_set():
                return JobResult(state=State.CANCELLED, duration=time.monotonic() - started)
            if job.command == "precheck":
                return await self._precheck(job, checkout, out_dir, cancel, started)
            run = await self._run_ilab(job, gh, progress, checkout, out_dir, log_path, cancel)
            state = _state_for(run)
            error = progress.error if state is State.FAILED else ""
            if state is State.FAILED and not error:
                error = f"ilab exited with code {run.exit_code}"
            summary = await asyncio.to_thread(summarize, out_dir)
            artifacts, index_url = await self._upload(job, out_dir, log_path)
            return JobResult(
                state=state,
                duration=time.monotonic() - started,
                exit_code=run.exit_code,
                error=error,
                generated=summary.generated if state is State.SUCCEEDED else None,
                discarded=progress.discarded,
                samples=summary.samples,
                artifacts=artifacts,
                index_url=index_url,
                log_tail=progress.last_lines(messages.FAILURE_LOG_LINES),
            )
        except (JobFailed, GitError, StorageError, GitHubError) as exc:
            log.warning("job.failed", error=str(exc))
            return JobResult(
                state=State.FAILED,
                duration=time.monotonic() - started,
                error=str(exc),
                log_tail=progress.last_lines(messages.FAILURE_LOG_LINES),
            )
        finally:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(shutil.rmtree, workspace, True)

    async def _checkout(self, job: Job, workspace: Path) -> CheckoutResult:
        token = None
        if self.settings.github_git_url.startswith(("http://", "https://")):
            token = await self.github.token(job.installation_id)
        with span("git.fetch", sha=job.head_sha):
            return await self._fetch(job, workspace, token)

    async def _fetch(self, job: Job, workspace: Path, token: str | None) -> CheckoutResult:
        return await checkout_pull_request(
            CheckoutRequest(
                git_url_base=self.settings.github_git_url,
                pull=job.pull_request,
                base_branch=job.base_branch,
                expected_head_sha=job.head_sha,
                dest=workspace / "taxonomy",
                token=token,
                timeout=self.settings.git_timeout,
            )
        )

    async def _run_ilab(
        self,
        job: Job,
        gh: Installation,
        progress: Progress,
        checkout: CheckoutResult,
        out_dir: Path,
        log_path: Path,
        cancel: asyncio.Event | None,
    ) -> RunResult:
        argv = generate_argv(self.settings, checkout.path, checkout.base_ref, out_dir)
        env = scrub_env(os.environ, secrets=self.settings.secrets())
        stop_updates = asyncio.Event()
        updater = asyncio.create_task(self._report_progress(job, gh, progress, stop_updates))
        with log_path.open("w", encoding="utf-8", errors="replace") as log_file:
            try:
                with span("ilab.run", argv0=argv[0]) as current:
                    run = await run_streaming(
                        argv,
                        cwd=checkout.path,
                        env=env,
                        on_line=_line_sink(progress, log_file),
                        cancel=cancel,
                        limits=RunLimits(
                            timeout=self.settings.job_timeout, kill_grace=self.settings.kill_grace
                        ),
                    )
                    current.set_attribute("ilab_bot.exit_code", str(run.exit_code))
                    current.set_attribute("ilab_bot.outcome", run.outcome)
            except OSError as exc:
                raise JobFailed(f"cannot start `{argv[0]}`: {exc.strerror or exc}") from None
            finally:
                stop_updates.set()
                await updater
        code = "signal" if run.exit_code is None else str(run.exit_code)
        self.metrics.exits.labels(job.command, code if len(code) <= 3 else "other").inc()
        return run

    async def _precheck(
        self,
        job: Job,
        checkout: CheckoutResult,
        out_dir: Path,
        cancel: asyncio.Event | None,
        started: float,
    ) -> JobResult:
        """Ask the model each seed question; compare with the contributor's answers."""
        seeds = await asyncio.to_thread(
            precheck.read_seeds, checkout.path, [f for f in job.files.split(",") if f]
        )
        env = scrub_env(os.environ, secrets=self.settings.secrets())
        with span("precheck.ask", questions=len(seeds)):
            answers = await precheck.ask_all(
                self.settings, seeds, cwd=checkout.path, env=env, cancel=cancel
            )
        await asyncio.to_thread(precheck.write_results, out_dir, answers)
        if cancel is not None and cancel.is_set():
            state = State.CANCELLED
        else:
            state = State.SUCCEEDED if any(a.answer for a in answers) else State.FAILED
        artifacts, index_url = await self._upload(job, out_dir, None)
        failed = [a for a in answers if a.error]
        return JobResult(
            state=state,
            duration=time.monotonic() - started,
            error=failed[0].error if state is State.FAILED and failed else "",
            artifacts=artifacts,
            index_url=index_url,
            precheck=tuple(answers),
        )

    async def _report_progress(
        self, job: Job, gh: Installation, progress: Progress, stop: asyncio.Event
    ) -> None:
        """At most one check-run update per interval, only when something changed."""
        last_seen = -1
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.progress_interval)
            if stop.is_set() or progress.lines_seen == last_seen:
                continue
            last_seen = progress.lines_seen
            await _best_effort(
                "check_run.progress",
                gh.update_check_run(
                    job.owner,
                    job.repo,
                    job.check_run_id,
                    messages.check_run_progress(job, progress),
                    droppable=True,
                ),
            )
            await _best_effort_redis(
                self.queue.update_job(
                    job.id,
                    progress=progress.percent or 0,
                    stage=messages.progress_title(progress),
                )
            )

    async def _upload(
        self, job: Job, out_dir: Path, log_path: Path | None
    ) -> tuple[tuple[Artifact, ...], str]:
        prefix = job.artifact_key_prefix()
        listed = await asyncio.to_thread(list_files, out_dir)
        files = [(p.relative_to(out_dir).as_posix(), p) for p in listed]
        if log_path is not None:
            files.append((LOG_NAME, log_path))
        artifacts: list[Artifact] = []
        with span("artifacts.upload", files=len(files)):
            async with asyncio.timeout(self.settings.upload_timeout):
                for name, path in files:
                    size = await self.store.put_file(prefix + name, path, guess_content_type(name))
                    artifacts.append(Artifact(name, await self.store.link(prefix + name), size))
                index = render_index_html(
                    f"{job.repo_full_name} #{job.pr_number} @ {job.head_sha[:7]}: {job.command}",
                    [(a.name, a.url, a.size) for a in artifacts],
                )
                await self.store.put_bytes(
                    prefix + "index.html", index.encode(), "text/html; charset=utf-8"
                )
                index_url = await self.store.link(prefix + "index.html")
        uploaded = sum(a.size for a in artifacts)
        self.metrics.artifact_bytes.inc(uploaded)
        log.info("job.uploaded", files=len(artifacts), bytes=uploaded)
        return tuple(artifacts), index_url

    async def finish(self, entry: StreamEntry, job: Job, result: JobResult) -> None:
        """Report the end state on GitHub, then store it and acknowledge in one step."""
        await self._report(job, result)
        fields = {
            "finished_at": time.time(),
            "error": result.error[:2000],
            "index_url": result.index_url,
            "generated": -1 if result.generated is None else result.generated,
        }
        stored = await _retry_redis(
            "finish_job",
            lambda: self.queue.finish_job(entry, job, self.name, result.state, **fields),
        )
        self.metrics.jobs_completed.labels(job.command, CONCLUSIONS[result.state]).inc()
        self.metrics.job_duration.labels(job.command).observe(result.duration)
        log.info(
            "job.finished",
            state=str(result.state),
            duration=round(result.duration, 3),
            stored=stored,
        )

    async def _report(self, job: Job, result: JobResult) -> None:
        """Complete the check run and comment once, however often this job is re-run."""
        gh = self.github.installation(job.installation_id)
        await _best_effort(
            "check_run.complete",
            gh.update_check_run(
                job.owner, job.repo, job.check_run_id, messages.check_run_completed(job, result)
            ),
        )
        marker = f"result:{job.id}"
        if not await _retry_redis("claim_once", lambda: self.queue.claim_once(marker)):
            return
        try:
            comment_id = await gh.create_comment(
                job.owner, job.repo, job.pr_number, messages.result_comment(job, result)
            )
        except GitHubError as exc:
            await _retry_redis("release_once", lambda: self.queue.release_once(marker))
            log.error("job.comment_failed", error=str(exc))
            return
        await _best_effort_redis(self.queue.update_job(job.id, result_comment_id=comment_id))


def _state_for(run: RunResult) -> State:
    if run.outcome == "timed_out":
        return State.TIMED_OUT
    if run.outcome == "cancelled":
        return State.CANCELLED
    return State.SUCCEEDED if run.exit_code == 0 else State.FAILED


def _line_sink(progress: Progress, log_file: IO[str]) -> Callable[[str, str], None]:
    def sink(_stream: str, line: str) -> None:
        log_file.write(line + "\n")
        progress.feed(line)

    return sink


async def _best_effort(what: str, call: Awaitable[None]) -> None:
    """Progress and status updates must never fail a job that is otherwise fine."""
    try:
        await call
    except GitHubError as exc:
        log.warning("github.update_skipped", what=what, error=str(exc))


async def _best_effort_redis(call: Awaitable[None]) -> None:
    with contextlib.suppress(RedisError, OSError):
        await call


async def _retry_redis(what: str, call: Callable[[], Awaitable[T]], limit: float = 600.0) -> T:
    """Redis steps that record an outcome: wait out an outage (capped backoff) up to `limit`."""
    deadline = time.monotonic() + limit
    delay = 0.2
    while True:
        try:
            return await call()
        except (RedisError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("redis.retry", what=what, error=repr(exc), retry_in=round(delay, 2))
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, 10.0)


async def _sleep_jitter(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds * (0.5 + random.random()))  # noqa: S311
