"""Dispatcher: turns stored webhook intents into jobs, doing the GitHub-side acknowledgement.

Each step records its result on the job hash before the next one runs, and job ids derive
from the delivery id, so a redelivered or reclaimed event resumes where it stopped: one check
run, one job, however often it is processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import structlog
from redis.exceptions import RedisError

from . import messages
from .commands import Command
from .github import GitHubApp, GitHubError, Installation
from .jobs import Job
from .metrics import ServerMetrics
from .queue import DISPATCH_GROUP, EVENTS_STREAM, Queue, StreamEntry, consumer_name
from .settings import Settings
from .tracing import continue_trace, current_traceparent, span
from .webhooks import CommandIntent

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5


def job_id_for(delivery_id: str, command: Command) -> str:
    """Stable across redeliveries of one stored event, unique per command line."""
    digest = hashlib.sha256(f"{delivery_id}:{command.line}".encode()).hexdigest()
    return digest[:24]


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        github: GitHubApp,
        *,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.metrics = metrics or ServerMetrics()
        self.settings = settings
        self.queue = queue
        self.github = github
        self.consumer = consumer_name()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume events until `stop` is set; Redis outages are waited out, never fatal.

        Blocking reads are short so that stopping never waits on a cancelled Redis call
        (redis-py drains a blocking reply before it gives the connection back).
        """
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.queue.ensure_groups()
                entries = await self.queue.claim_stale(
                    EVENTS_STREAM,
                    DISPATCH_GROUP,
                    self.consumer,
                    int(self.settings.lease_timeout * 1000),
                )
                entries += await self.queue.read(
                    EVENTS_STREAM, DISPATCH_GROUP, self.consumer, count=10, block_ms=1000
                )
                for entry in entries:
                    await self.handle(entry)
                backoff = 0.5
            except (RedisError, OSError) as exc:
                log.warning("dispatcher.redis_error", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def handle(self, entry: StreamEntry) -> None:
        delivery_id = entry.fields.get("delivery", "")
        bound = log.bind(delivery_id=delivery_id, entry=entry.id)
        if entry.fields.get("type") != CommandIntent.kind:
            bound.warning("dispatcher.unknown_entry", type=entry.fields.get("type"))
            await self.queue.ack(entry, DISPATCH_GROUP)
            return
        intent = CommandIntent.from_json(entry.fields["intent"])
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with (
                    continue_trace(entry.fields.get("traceparent", "")),
                    span(
                        "dispatch",
                        repo=f"{intent.owner}/{intent.repo}",
                        pr=intent.pr_number,
                        delivery=delivery_id,
                    ),
                ):
                    await self.dispatch(delivery_id, intent)
                break
            except GitHubError as exc:
                bound.warning("dispatcher.github_failed", error=str(exc), attempt=attempt)
                if attempt == MAX_ATTEMPTS or not exc.transient:
                    break
                await asyncio.sleep(min(2**attempt, 30))
        await self.queue.ack(entry, DISPATCH_GROUP)

    async def dispatch(self, delivery_id: str, intent: CommandIntent) -> None:
        gh = self.github.installation(intent.installation_id)
        try:
            await gh.add_reaction(intent.owner, intent.repo, intent.comment_id, "eyes")
        except GitHubError as exc:  # an acknowledgement only: never worth losing the job for
            log.warning("dispatcher.reaction_failed", error=str(exc))
        for command in intent.commands:
            if not command.known:
                await self._reply_once(
                    gh,
                    intent,
                    f"unknown:{delivery_id}:{command.line}",
                    messages.unknown_command(self.settings.username, command.name),
                )
                continue
            await self._start_job(gh, delivery_id, intent, command)

    async def _start_job(
        self, gh: Installation, delivery_id: str, intent: CommandIntent, command: Command
    ) -> None:
        job_id = job_id_for(delivery_id, command)
        job = await self.queue.get_job(job_id)
        if job is None:
            pull = await gh.get_pull(intent.owner, intent.repo, intent.pr_number)
            if pull.get("state") != "open":
                await self._reply_once(
                    gh,
                    intent,
                    f"closed:{job_id}",
                    messages.job_error("This pull request is closed; nothing was run."),
                )
                return
            job = Job(
                id=job_id,
                command=command.name,
                installation_id=intent.installation_id,
                owner=intent.owner,
                repo=intent.repo,
                pr_number=intent.pr_number,
                requester=intent.requester,
                delivery_id=delivery_id,
                comment_id=intent.comment_id,
                head_sha=str(pull["head"]["sha"]),
                head_ref=str(pull["head"]["ref"]),
                base_branch=str(pull["base"]["ref"]),
                traceparent=current_traceparent(),
                private=bool(pull.get("base", {}).get("repo", {}).get("private", False)),
            )
            created = await self.queue.create_job(job)
            if created.status == "active":
                await self._already_running(gh, intent, job_id, created.job_id)
                return
            if created.status == "exists":
                job = await self.queue.get_job(job_id) or job
        bound = log.bind(job_id=job.id, repo=job.repo_full_name, pr=job.pr_number)
        if not job.check_run_id:
            check_run_id = await gh.create_check_run(
                job.owner, job.repo, messages.check_run_queued(job)
            )
            await self.queue.update_job(job.id, check_run_id=check_run_id)
            job = job.evolve(check_run_id=check_run_id)
        if not job.stream_id:
            stream_id = await self.queue.enqueue_job(job)
            await self.queue.update_job(job.id, stream_id=stream_id)
            bound.info("job.queued", command=job.command, sha=job.head_sha, stream_id=stream_id)
            self.metrics.jobs_enqueued.labels(job.command).inc()

    async def _already_running(
        self, gh: Installation, intent: CommandIntent, job_id: str, other_id: str
    ) -> None:
        other = await self.queue.get_job(other_id)
        if other is None:
            return
        log.info("job.duplicate", job_id=job_id, existing=other.id, pr=intent.pr_number)
        url = messages.check_run_url(self.settings.github_git_url, other)
        await self._reply_once(gh, intent, f"active:{job_id}", messages.already_running(other, url))

    async def _reply_once(
        self, gh: Installation, intent: CommandIntent, marker: str, body: str
    ) -> None:
        if not await self.queue.claim_once(marker):
            return
        try:
            await gh.create_comment(intent.owner, intent.repo, intent.pr_number, body)
        except GitHubError:
            with contextlib.suppress(RedisError):
                await self.queue.release_once(marker)
            raise
