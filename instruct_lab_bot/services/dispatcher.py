"""Dispatcher: acts on stored webhook intents, doing every GitHub call the webhook skipped.

Each step records its result before the next one runs, and job ids and reply markers derive
from the delivery id, so a redelivered or reclaimed event resumes where it stopped: one check
run, one job, one reply, however often it is processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github import GitHubApp, GitHubError, Installation
from instruct_lab_bot.adapters.redis.keys import DISPATCH_GROUP, EVENTS_STREAM
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import StreamEntry, consumer_name
from instruct_lab_bot.adapters.tracing import continue_trace, current_traceparent, span
from instruct_lab_bot.core import messages
from instruct_lab_bot.core.commands import GPU_COMMANDS, Command, suggest
from instruct_lab_bot.core.job_view import ReadOptions
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.permissions import Facts, Policy, decide
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import (
    CheckRunIntent,
    CommandIntent,
    Intent,
    PullRequestIntent,
    intent_from_json,
)
from instruct_lab_bot.services.job_status import pr_status
from instruct_lab_bot.services.metrics import ServerMetrics
from instruct_lab_bot.services.validator import Validator

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5
FACTS_TTL = 60.0  # seconds a person's role and team memberships are trusted for
RETRYABLE = (State.FAILED, State.CANCELLED, State.TIMED_OUT, State.DEAD, State.SUPERSEDED)


def job_id_for(delivery_id: str, marker: object) -> str:
    """Stable across redeliveries of one stored event, unique per command line."""
    return hashlib.sha256(f"{delivery_id}:{marker}".encode()).hexdigest()[:24]


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
        self.policy = Policy.from_settings(settings)
        self.validator = Validator(settings, queue)
        self.consumer = consumer_name()
        self._facts: dict[tuple[str, str, str], tuple[float, Facts]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Consume events until `stop` is set; Redis outages are waited out, never fatal.

        Blocking reads are short so that stopping never waits on a cancelled Redis call
        (redis-py drains a blocking reply before it gives the connection back).
        """
        backoff = 0.5
        groups_ready = False
        while not stop.is_set():
            try:
                if not groups_ready:  # at start, and again after Redis came back
                    await self.queue.ensure_groups()
                    groups_ready = True
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
                groups_ready = False
                log.warning("dispatcher.redis_error", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def handle(self, entry: StreamEntry) -> None:
        delivery_id = entry.fields.get("delivery", "")
        bound = log.bind(delivery_id=delivery_id, entry=entry.id)
        try:
            intent = intent_from_json(entry.fields.get("type", ""), entry.fields["intent"])
        except (KeyError, ValueError, TypeError) as exc:
            bound.warning("dispatcher.bad_entry", error=repr(exc))
            await self.queue.ack(entry, DISPATCH_GROUP)
            return
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with (
                    continue_trace(entry.fields.get("traceparent", "")),
                    span(
                        "dispatch",
                        kind=intent.kind,
                        repo=f"{intent.owner}/{intent.repo}",
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
            except (RedisError, OSError):
                raise  # the entry stays pending; the loop waits Redis out and reclaims it
            except Exception:  # a bug must not stop every later event: log it, move on
                bound.exception("dispatcher.failed", kind=intent.kind)
                break
        await self.queue.ack(entry, DISPATCH_GROUP)

    async def dispatch(self, delivery_id: str, intent: Intent) -> None:
        gh = self.github.installation(intent.installation_id)
        if isinstance(intent, CommandIntent):
            await self._comment(gh, delivery_id, intent)
        elif isinstance(intent, PullRequestIntent):
            await self._pull_request(gh, delivery_id, intent)
        else:
            await self._check_run(gh, delivery_id, intent)

    # -- comments ---------------------------------------------------------------------------

    async def _comment(self, gh: Installation, delivery_id: str, intent: CommandIntent) -> None:
        try:
            await gh.add_reaction(intent.owner, intent.repo, intent.comment_id, "eyes")
        except GitHubError as exc:  # an acknowledgement only: never worth losing the job for
            log.warning("dispatcher.reaction_failed", error=str(exc))
        reply = Replies(self, gh, intent.owner, intent.repo, intent.pr_number, delivery_id)
        if not intent.on_pull_request:
            await reply.once("not-a-pr", messages.not_a_pull_request(self.settings.username))
            return
        if intent.truncated:
            await reply.once("truncated", messages.too_many_commands(len(intent.commands)))
        for command in intent.commands:
            await self._command(gh, reply, delivery_id, intent, command)

    async def _command(
        self,
        gh: Installation,
        reply: Replies,
        delivery_id: str,
        intent: CommandIntent,
        command: Command,
    ) -> None:
        name = command.name
        marker = f"{name}:{command.line}"
        if not command.known:
            self.metrics.commands.labels("unknown", "unknown").inc()
            text = messages.unknown_command(self.settings.username, name, suggest(name))
            await reply.once(marker, text)
            return
        if not await self._allowed(
            gh, reply, marker, intent.owner, intent.repo, intent.sender, name
        ):
            return
        self.metrics.commands.labels(name, "accepted").inc()
        if name == "help":
            await reply.once(
                marker,
                messages.help_text(
                    self.settings.username, self.policy, self.settings.required_labels
                ),
            )
        elif name == "status":
            await reply.once(
                marker, await self._status_text(intent.owner, intent.repo, intent.pr_number)
            )
        elif name == "cancel":
            cancelled = await self._cancel(
                gh, intent.owner, intent.repo, intent.pr_number, intent.sender
            )
            await reply.once(marker, messages.cancelled(cancelled, intent.sender))
        elif name == "retry":
            await self._retry(
                gh,
                reply,
                marker,
                job_id_for(delivery_id, command.line),
                intent.owner,
                intent.repo,
                intent.pr_number,
                intent.sender,
            )
        else:
            await self._start(
                gh,
                reply,
                marker,
                job_id_for(delivery_id, command.line),
                name,
                intent.owner,
                intent.repo,
                intent.pr_number,
                intent.sender,
                comment_id=intent.comment_id,
                delivery_id=delivery_id,
            )

    async def _allowed(
        self,
        gh: Installation,
        reply: Replies,
        marker: str,
        owner: str,
        repo: str,
        login: str,
        command: str,
    ) -> bool:
        if not self.policy.restricted(command):
            return True
        with span("permission_check", user=login, command=command):
            facts = await self._facts_for(gh, owner, repo, login)
        decision = decide(self.policy, command, facts)
        if not decision.allowed:
            self.metrics.commands.labels(command, "denied").inc()
            log.info("command.denied", user=login, command=command, reason=decision.reason)
            await reply.once(marker, messages.denied(command, login, self.policy))
        return decision.allowed

    async def _facts_for(self, gh: Installation, owner: str, repo: str, login: str) -> Facts:
        key = (owner, repo, login)
        cached = self._facts.get(key)
        if cached and time.monotonic() - cached[0] < FACTS_TTL:
            return cached[1]
        if login.endswith("[bot]"):
            facts = Facts(login, is_bot=True)
        else:
            role = await gh.permission(owner, repo, login) if self.policy.role_rule else "none"
            teams: set[str] = set()
            for team in self.policy.allowed_teams:
                org, slug = team.split("/", 1)
                if await gh.team_member(org, slug, login):
                    teams.add(team)
            facts = Facts(login, role=role, teams=frozenset(teams))
        self._facts[key] = (time.monotonic(), facts)
        return facts

    # -- starting jobs ----------------------------------------------------------------------

    async def _start(
        self,
        gh: Installation,
        reply: Replies,
        marker: str,
        job_id: str,
        command: str,
        owner: str,
        repo: str,
        pr_number: int,
        requester: str,
        *,
        comment_id: int = 0,
        delivery_id: str = "",
    ) -> Job | None:
        """Gate (open PR, labels, a valid taxonomy change), then create and queue the job."""
        job = await self.queue.get_job(job_id)
        if job is None:
            pull = await gh.get_pull(owner, repo, pr_number)
            if pull.get("state") != "open":
                await reply.once(marker, messages.pull_request_closed(command))
                return None
            head_sha = str(pull["head"]["sha"])
            labels = {str(label.get("name")) for label in pull.get("labels") or ()}
            wanted = self.settings.required_labels
            if command in GPU_COMMANDS and wanted and not labels & set(wanted):
                await gh.create_check_run(
                    owner, repo, messages.labels_check_run(command, head_sha, wanted)
                )
                await reply.once(marker, messages.labels_needed(command, wanted))
                return None
            files = await self.validator.changed_taxonomy_files(gh, owner, repo, pr_number)
            if command in GPU_COMMANDS:
                if not files:
                    await reply.once(marker, messages.no_taxonomy_change(command))
                    return None
                report = await self.validator.validate(gh, owner, repo, head_sha, files)
                if report.failures:
                    await reply.once(
                        marker, messages.validation_failed(command, report.url, report.failures)
                    )
                    return None
            job = Job(
                id=job_id,
                command=command,
                installation_id=gh.installation_id,
                owner=owner,
                repo=repo,
                pr_number=pr_number,
                requester=requester,
                delivery_id=delivery_id,
                comment_id=comment_id,
                head_sha=head_sha,
                head_ref=str(pull["head"]["ref"]),
                base_branch=str(pull["base"]["ref"]),
                traceparent=current_traceparent(),
                private=bool(pull.get("base", {}).get("repo", {}).get("private", False)),
                files=",".join(files),
            )
            created = await self.queue.create_job(job)
            if created.status == "active":
                other = await self.queue.get_job(created.job_id)
                if other is not None:
                    log.info("job.duplicate", job_id=job_id, existing=other.id)
                    url = messages.check_run_url(self.settings.github_git_url, other)
                    await reply.once(marker, messages.already_running(other, url))
                return None
            if created.status == "exists":
                job = await self.queue.get_job(job_id) or job
        await self._queue(gh, job)
        return job

    async def _queue(self, gh: Installation, job: Job) -> None:
        if not job.check_run_id:
            check_run_id = await self._find_or_create_check_run(gh, job)
            await self.queue.update_job(job.id, check_run_id=check_run_id)
            job = job.evolve(check_run_id=check_run_id)
        if not job.stream_id:
            stream_id = await self.queue.enqueue_job(job)
            await self.queue.update_job(job.id, stream_id=stream_id)
            log.info(
                "job.queued",
                job_id=job.id,
                command=job.command,
                sha=job.head_sha,
                pr=job.pr_number,
                stream_id=stream_id,
            )
            self.metrics.jobs_enqueued.labels(job.command).inc()

    async def _find_or_create_check_run(self, gh: Installation, job: Job) -> int:
        """A dispatcher that died between creating the check run and recording it must not
        leave a second one: look for ours (external_id = job id) before creating."""
        existing = await gh.find_check_run(
            job.owner, job.repo, job.head_sha, messages.check_name(job.command), job.id
        )
        if existing:
            return existing
        return await gh.create_check_run(job.owner, job.repo, messages.check_run_queued(job))

    async def _retry(
        self,
        gh: Installation,
        reply: Replies,
        marker: str,
        job_id: str,
        owner: str,
        repo: str,
        pr_number: int,
        requester: str,
        source: Job | None = None,
    ) -> None:
        if source is None:
            jobs = await self.queue.get_jobs(await self.queue.pr_job_ids(owner, repo, pr_number))
            source = next((j for j in reversed(jobs) if j.state in RETRYABLE), None)
        if source is None:
            await reply.once(marker, messages.nothing_to_retry())
            return
        await self._start(
            gh, reply, marker, job_id, source.command, owner, repo, pr_number, requester
        )

    # -- cancelling -------------------------------------------------------------------------

    async def _cancel(
        self,
        gh: Installation,
        owner: str,
        repo: str,
        pr_number: int,
        login: str,
        *,
        state: State = State.CANCELLED,
        new_sha: str = "",
        only_queued: bool = False,
    ) -> list[Job]:
        """Queued jobs end now; running ones are told to stop (their worker checks on every
        heartbeat and ends the process group, then reports `cancelled`)."""
        done: list[Job] = []
        jobs = await self.queue.get_jobs(await self.queue.pr_job_ids(owner, repo, pr_number))
        for job in jobs:
            if job.state is State.QUEUED and (not new_sha or job.head_sha != new_sha):
                moved = await self.queue.transition(
                    job.id, state, finished_at=time.time(), cancelled_by=login
                )
                if not moved.ok:
                    continue
                payload = (
                    messages.superseded(job, new_sha)
                    if state is State.SUPERSEDED
                    else messages.cancelled_check_run(job, login)
                )
                if job.check_run_id:
                    await gh.update_check_run(owner, repo, job.check_run_id, payload)
                done.append(job)
            elif job.state is State.RUNNING and not only_queued:
                await self.queue.request_cancel(job.id, login)
                done.append(job)
        return done

    # -- status -----------------------------------------------------------------------------

    async def _status_text(self, owner: str, repo: str, pr_number: int) -> str:
        """The same read model as the status page; PR commenters see their private repo."""
        options = ReadOptions.from_settings(self.settings, show_private=True)
        pr = await pr_status(self.queue, owner, repo, pr_number, options)
        page = f"{self.settings.public_url}/repos/{owner}/{repo}/pulls/{pr_number}"
        return messages.status_reply(pr, page)

    # -- pull request and check run events ------------------------------------------------

    async def _pull_request(
        self, gh: Installation, delivery_id: str, intent: PullRequestIntent
    ) -> None:
        owner, repo, number = intent.owner, intent.repo, intent.pr_number
        if intent.action == "closed":
            await self._cancel(gh, owner, repo, number, intent.sender)
            return
        if intent.action == "synchronize":
            await self._cancel(
                gh,
                owner,
                repo,
                number,
                intent.sender,
                state=State.SUPERSEDED,
                new_sha=intent.head_sha,
                only_queued=True,
            )
        if intent.action in ("opened", "reopened", "labeled"):
            await self._welcome(gh, intent)
        if intent.action in ("opened", "reopened", "synchronize"):
            files = await self.validator.changed_taxonomy_files(gh, owner, repo, number)
            if files:
                await self.validator.validate(gh, owner, repo, intent.head_sha, files)

    async def _welcome(self, gh: Installation, intent: PullRequestIntent) -> None:
        """One welcome per PR, even under redelivery or a wiped Redis (hidden marker)."""
        if not self.settings.welcome:
            return
        wanted = self.settings.required_labels
        if wanted and not set(intent.labels) & set(wanted):
            return  # welcomed once it gets one of the labels
        key = f"welcome:{intent.owner}/{intent.repo}#{intent.pr_number}"
        if not await self.queue.claim_once(key, ttl=365 * 24 * 3600):
            return
        try:
            if await gh.has_comment_with(
                intent.owner, intent.repo, intent.pr_number, messages.WELCOME_MARKER
            ):
                return
            await gh.create_comment(
                intent.owner,
                intent.repo,
                intent.pr_number,
                messages.welcome(self.settings.username, intent.author, self.policy, wanted),
            )
        except GitHubError:
            with contextlib.suppress(RedisError):
                await self.queue.release_once(key)
            raise

    async def _check_run(self, gh: Installation, delivery_id: str, intent: CheckRunIntent) -> None:
        """ "Re-run" on a check run, or its "Retry" button: retry that job on the current head."""
        if intent.action == "requested_action" and intent.identifier != "retry":
            return
        source = await self.queue.get_job(intent.external_id) if intent.external_id else None
        if source is None:
            log.info("check_run.unknown_job", external_id=intent.external_id)
            return
        reply = Replies(self, gh, source.owner, source.repo, source.pr_number, delivery_id)
        if not await self._allowed(
            gh, reply, "retry", source.owner, source.repo, intent.sender, "retry"
        ):
            return
        await self._retry(
            gh,
            reply,
            "retry",
            job_id_for(delivery_id, "check-run"),
            source.owner,
            source.repo,
            source.pr_number,
            intent.sender,
            source=source,
        )


class Replies:
    """Comments on one PR for one delivery, each posted at most once (keyed by marker)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        gh: Installation,
        owner: str,
        repo: str,
        number: int,
        delivery_id: str,
    ) -> None:
        self.queue = dispatcher.queue
        self.gh = gh
        self.owner, self.repo, self.number = owner, repo, number
        self.delivery_id = delivery_id

    async def once(self, marker: str, body: str) -> None:
        key = f"reply:{self.delivery_id}:{marker}"
        if not await self.queue.claim_once(key):
            return
        try:
            await self.gh.create_comment(self.owner, self.repo, self.number, body)
        except GitHubError:
            with contextlib.suppress(RedisError):
                await self.queue.release_once(key)
            raise
