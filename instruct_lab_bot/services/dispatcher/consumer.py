"""The dispatcher's loop: read stored webhook intents from Redis and route each to its part.

Each step records its result before the next one runs, and job ids and reply markers derive
from the delivery id, so a redelivered or reclaimed event resumes where it stopped: one check
run, one job, one reply, however often it is processed. An event whose installation has spent
GitHub's hourly quota is left pending, not acknowledged and not counted as an attempt, and
taken back once GitHub's reset has passed (`parked.Parked`; or by anyone after its lease).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github import GitHubApp, GitHubError, QuotaSpent
from instruct_lab_bot.adapters.redis.keys import DISPATCH_GROUP, EVENTS_STREAM
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import StreamEntry, consumer_name
from instruct_lab_bot.adapters.tracing import continue_trace, span
from instruct_lab_bot.core.permissions import Policy
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import (
    CommandIntent,
    Intent,
    PullRequestIntent,
    intent_from_json,
)
from instruct_lab_bot.services.dispatcher.access import Gatekeeper
from instruct_lab_bot.services.dispatcher.check_runs import CheckRunEvents
from instruct_lab_bot.services.dispatcher.commands import CommandHandlers
from instruct_lab_bot.services.dispatcher.context import Deps
from instruct_lab_bot.services.dispatcher.inflight import InFlight
from instruct_lab_bot.services.dispatcher.jobs import JobStarter
from instruct_lab_bot.services.dispatcher.parked import Parked
from instruct_lab_bot.services.dispatcher.pull_requests import PullRequestEvents
from instruct_lab_bot.services.dispatcher.repo_configs import RepoConfigs
from instruct_lab_bot.services.dispatcher.stopping import JobStopper
from instruct_lab_bot.services.metrics import ServerMetrics
from instruct_lab_bot.services.serving.chat import ChatService
from instruct_lab_bot.services.validator import Validator

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        github: GitHubApp,
        *,
        metrics: ServerMetrics | None = None,
        chat: ChatService | None = None,
    ) -> None:
        self.metrics = metrics or ServerMetrics()
        self.settings = settings
        self.queue = queue
        self.github = github
        self.policy = Policy.from_settings(settings)
        self.validator = Validator(settings, queue)
        self.consumer = consumer_name()
        self.parked = Parked(queue, self.consumer)
        configs = RepoConfigs(settings, queue)
        deps = Deps(settings, queue, self.metrics, self.policy, self.validator, configs, chat)
        gatekeeper = Gatekeeper(self.policy, self.metrics)
        starter, stopper = JobStarter(deps), JobStopper(queue)
        self.commands = CommandHandlers(deps, gatekeeper, starter, stopper)
        self.pull_requests = PullRequestEvents(deps, stopper)
        self.check_runs = CheckRunEvents(deps, gatekeeper, starter)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume events until `stop` is set; Redis outages are waited out, never fatal.

        Up to `dispatch_concurrency` events are handled at once (those of one PR in order),
        and their stream claims are renewed meanwhile; on stop, those in flight finish.
        Blocking reads are short so that stopping never waits on a cancelled Redis call
        (redis-py drains a blocking reply before it gives the connection back).
        """
        inflight = InFlight(
            self.settings.dispatch_concurrency,
            self.handle,
            self._renew,
            renew_every=self.settings.lease_timeout / 3,
        )
        drained = asyncio.Event()
        renewer = asyncio.create_task(inflight.renew_claims(drained))
        try:
            await self._consume(stop, inflight)
            await inflight.drain()
        finally:  # cancelled: events still in flight stay pending in Redis, for a reclaim
            await inflight.cancel()
            drained.set()
            await renewer

    async def _consume(self, stop: asyncio.Event, inflight: InFlight) -> None:
        backoff = 0.5
        groups_ready = False
        next_migration = 0.0
        while not stop.is_set():
            try:
                if not groups_ready:  # at start, and again after Redis came back
                    await self.queue.ensure_groups()
                    groups_ready = True
                if time.monotonic() >= next_migration:  # jobs queued before worker pools
                    next_migration = time.monotonic() + self.settings.lease_timeout
                    await self.queue.migrate_jobs(self.settings.lease_timeout)
                await inflight.wait_for_slot()
                for entry in await self._next_entries(inflight):
                    inflight.start(entry)
                backoff = 0.5
            except (RedisError, OSError) as exc:
                groups_ready = False
                log.warning("dispatcher.redis_error", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _renew(self, entry_ids: list[str]) -> list[str]:
        return await self.queue.renew_claims(
            EVENTS_STREAM, DISPATCH_GROUP, self.consumer, entry_ids
        )

    async def _next_entries(self, inflight: InFlight) -> list[StreamEntry]:
        """Entries set aside for a quota that has reset, entries another dispatcher left
        pending too long, then new ones: as many as there are free slots (an entry this
        dispatcher is still handling is not taken twice)."""
        entries = [e for e in await self.parked.due(inflight.free) if e.id not in inflight]
        if inflight.free > len(entries):
            stale = await self.queue.claim_stale(
                EVENTS_STREAM,
                DISPATCH_GROUP,
                self.consumer,
                int(self.settings.lease_timeout * 1000),
                count=inflight.free - len(entries),
            )
            entries += [entry for entry in stale if entry.id not in inflight]
        wanted = inflight.free - len(entries)
        if wanted > 0:
            entries += await self.queue.read(
                EVENTS_STREAM, DISPATCH_GROUP, self.consumer, count=wanted, block_ms=1000
            )
        return entries

    async def handle(self, entry: StreamEntry) -> None:
        delivery_id = entry.fields.get("delivery", "")
        bound = log.bind(delivery_id=delivery_id, entry=entry.id)
        self.parked.forget(entry.id)
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
                    if attempt == 1:  # the server logs no line per delivery (issue 17)
                        bound.info(
                            "dispatcher.event",
                            kind=intent.kind,
                            repo=f"{intent.owner}/{intent.repo}",
                        )
                    await self.dispatch(delivery_id, intent)
                break
            except QuotaSpent as exc:
                # Not an attempt, and not acknowledged: the entry stays pending, taken back at
                # the reset (or claimed by anyone after its lease: until the reset that costs
                # one Redis read, never a GitHub call). Its recorded steps make it resume.
                self.parked.park(entry.id, exc.until)
                self.metrics.events_held_for_quota.inc()
                bound.debug("dispatcher.quota_wait", until=round(exc.until, 3))
                return
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
            await self.commands.comment(gh, delivery_id, intent)
        elif isinstance(intent, PullRequestIntent):
            await self.pull_requests.handle(gh, intent)
        else:
            await self.check_runs.handle(gh, delivery_id, intent)
