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
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO

import aiohttp
import structlog
from redis.exceptions import RedisError

from . import messages
from .git import CheckoutResult, GitError, checkout_pull_request
from .github import GitHubApp, GitHubError, Installation
from .jobs import Job, State
from .messages import Artifact, JobResult
from .outputs import list_files, summarize
from .progress import Progress
from .queue import JOBS_STREAM, WORKER_GROUP, Queue, StreamEntry, consumer_name
from .runner import RunResult, run_streaming, scrub_env
from .settings import Settings
from .storage import (
    ArtifactStore,
    StorageError,
    guess_content_type,
    open_store,
    parse_artifacts_url,
    render_index_html,
)

log = structlog.get_logger(__name__)

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
    settings: Settings, *, concurrency: int = 1, name: str | None = None
) -> AsyncIterator[Worker]:
    """A worker with its Redis pool, HTTP session and artifact store, closed on exit."""
    queue = Queue.from_url(settings.redis_url)
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
            github = GitHubApp(
                session,
                app_id=settings.github_app_id,
                private_key=settings.github_private_key.value,
                api_url=settings.github_api_url,
                timeout=settings.github_timeout,
            )
            yield Worker(settings, queue, github, store, concurrency=concurrency, name=name)
    finally:
        try:
            await store.aclose()
        finally:
            await queue.aclose()


class Worker:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        github: GitHubApp,
        store: ArtifactStore,
        *,
        concurrency: int = 1,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.github = github
        self.store = store
        self.concurrency = concurrency
        self.name = name or consumer_name()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until `stop` is set, then let running jobs finish."""
        backoff = 0.5
        log.info("worker.started", worker=self.name, concurrency=self.concurrency)
        while not stop.is_set():
            await self._slots.acquire()
            try:
                await self.queue.ensure_groups()
                entries = await self.queue.read(
                    JOBS_STREAM, WORKER_GROUP, self.name, count=1, block_ms=1000
                )
                backoff = 0.5
            except (RedisError, OSError) as exc:
                self._slots.release()
                log.warning("worker.redis_error", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if not entries:
                self._slots.release()
                continue
            task = asyncio.create_task(self._process_and_release(entries[0]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("worker.stopped", worker=self.name)

    async def _process_and_release(self, entry: StreamEntry) -> None:
        try:
            await self.process(entry)
        except Exception:
            log.exception("worker.job_crashed", entry=entry.id)
        finally:
            self._slots.release()

    async def process(self, entry: StreamEntry) -> None:
        job_id = entry.fields.get("job", "")
        claimed = await self.queue.start_job(job_id, self.name)
        if not claimed.ok:
            log.info("job.skipped", job_id=job_id, state=str(claimed.previous))
            if claimed.previous is None or claimed.previous.terminal:
                await self.queue.ack(entry, WORKER_GROUP)
            return
        job = await self.queue.get_job(job_id)
        assert job is not None
        with structlog.contextvars.bound_contextvars(
            job_id=job.id, repo=job.repo_full_name, pr=job.pr_number, command=job.command
        ):
            result = await self.execute(job)
            await self.finish(job, result)
            await self.queue.ack(entry, WORKER_GROUP)

    async def execute(self, job: Job) -> JobResult:
        """Run the job; every failure becomes a `JobResult`, never an exception."""
        gh = self.github.installation(job.installation_id)
        workspace = self.settings.work_dir / job.id
        progress = Progress()
        started = time.monotonic()
        try:
            await _best_effort(
                "check_run.start",
                gh.update_check_run(
                    job.owner, job.repo, job.check_run_id, messages.check_run_started(job)
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
            run = await self._run_ilab(job, gh, progress, checkout, out_dir, log_path)
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
        return await checkout_pull_request(
            git_url_base=self.settings.github_git_url,
            owner=job.owner,
            repo=job.repo,
            pr_number=job.pr_number,
            base_branch=job.base_branch,
            expected_head_sha=job.head_sha,
            dest=workspace / "taxonomy",
            token=token,
            timeout=self.settings.git_timeout,
        )

    async def _run_ilab(
        self,
        job: Job,
        gh: Installation,
        progress: Progress,
        checkout: CheckoutResult,
        out_dir: Path,
        log_path: Path,
    ) -> RunResult:
        argv = generate_argv(self.settings, checkout.path, checkout.base_ref, out_dir)
        env = scrub_env(os.environ, secrets=self.settings.secrets())
        stop_updates = asyncio.Event()
        updater = asyncio.create_task(self._report_progress(job, gh, progress, stop_updates))
        with log_path.open("w", encoding="utf-8", errors="replace") as log_file:
            try:
                return await run_streaming(
                    argv,
                    cwd=checkout.path,
                    env=env,
                    on_line=_line_sink(progress, log_file),
                    timeout=self.settings.job_timeout,
                    kill_grace=self.settings.kill_grace,
                )
            except FileNotFoundError as exc:
                raise JobFailed(f"cannot start `{argv[0]}`: {exc.strerror}") from None
            finally:
                stop_updates.set()
                await updater

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
                ),
            )
            await _best_effort_redis(self.queue.update_job(job.id, progress=progress.percent or 0))

    async def _upload(
        self, job: Job, out_dir: Path, log_path: Path
    ) -> tuple[tuple[Artifact, ...], str]:
        prefix = job.artifact_key_prefix()
        listed = await asyncio.to_thread(list_files, out_dir)
        files = [(p.relative_to(out_dir).as_posix(), p) for p in listed]
        files.append((LOG_NAME, log_path))
        artifacts: list[Artifact] = []
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
        log.info("job.uploaded", files=len(artifacts), bytes=sum(a.size for a in artifacts))
        return tuple(artifacts), index_url

    async def finish(self, job: Job, result: JobResult) -> None:
        """Report the end state on GitHub, then store it. Redelivery never comments twice."""
        gh = self.github.installation(job.installation_id)
        await _best_effort(
            "check_run.complete",
            gh.update_check_run(
                job.owner, job.repo, job.check_run_id, messages.check_run_completed(job, result)
            ),
        )
        if await self.queue.claim_once(f"result:{job.id}"):
            try:
                comment_id = await gh.create_comment(
                    job.owner, job.repo, job.pr_number, messages.result_comment(job, result)
                )
                await self.queue.update_job(job.id, result_comment_id=comment_id)
            except GitHubError as exc:
                await self.queue.release_once(f"result:{job.id}")
                log.error("job.comment_failed", error=str(exc))
        await self.queue.transition(
            job.id,
            result.state,
            finished_at=time.time(),
            error=result.error[:2000],
        )
        log.info("job.finished", state=str(result.state), duration=round(result.duration, 3))


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
