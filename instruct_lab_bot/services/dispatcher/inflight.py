"""Events in flight in one dispatcher: handled concurrently up to a bound, those of one pull
request in the order they arrived, and each one's stream claim renewed while it is handled.

A slow event (a PR with many files to validate) then holds one slot, not the dispatcher: a
`help` on another PR is answered meanwhile. Renewing the claim keeps another replica's
`claim_stale` from taking the event over (and validating it a second time) while this one
is still working on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.streams import StreamEntry
from instruct_lab_bot.core.webhooks import CheckRunIntent, intent_from_json

log = structlog.get_logger(__name__)

Handle = Callable[[StreamEntry], Awaitable[None]]
Renew = Callable[[list[str]], Awaitable[list[str]]]


def order_key(entry: StreamEntry) -> str:
    """Events with the same key are handled one after the other: one key per pull request
    (an unreadable entry is its own key)."""
    try:
        intent = intent_from_json(entry.fields.get("type", ""), entry.fields["intent"])
    except (KeyError, ValueError, TypeError):
        return entry.id
    where = f"{intent.owner}/{intent.repo}"
    if isinstance(intent, CheckRunIntent):
        return (
            f"{where}#{intent.pr_numbers[0]}" if intent.pr_numbers else f"{where}@{intent.head_sha}"
        )
    return f"{where}#{intent.pr_number}"


class InFlight:
    """At most `limit` events handled at once by `handle`; `renew` every `renew_every`
    seconds keeps the claims of those in flight."""

    def __init__(self, limit: int, handle: Handle, renew: Renew, renew_every: float) -> None:
        self.limit = limit
        self.handle = handle
        self.renew = renew
        self.renew_every = renew_every
        self.tasks: dict[str, asyncio.Task[None]] = {}  # entry id → its handling
        self.tails: dict[str, asyncio.Task[None]] = {}  # order key → its newest event

    @property
    def free(self) -> int:
        return max(0, self.limit - len(self.tasks))

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self.tasks

    def start(self, entry: StreamEntry) -> None:
        """Handle `entry` once the earlier events of its pull request are done."""
        key = order_key(entry)
        task = asyncio.create_task(self._run(entry, self.tails.get(key)))
        self.tasks[entry.id] = task
        self.tails[key] = task

        def forget(done: asyncio.Task[None]) -> None:
            self.tasks.pop(entry.id, None)
            if self.tails.get(key) is done:
                del self.tails[key]

        task.add_done_callback(forget)

    async def _run(self, entry: StreamEntry, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])  # its outcome is its own: only the order matters here
        try:
            await self.handle(entry)
        except (RedisError, OSError) as exc:  # left pending: claimed again once Redis is back
            log.warning("dispatcher.entry_redis_error", entry=entry.id, error=repr(exc))

    async def wait_for_slot(self) -> None:
        """Return once fewer than `limit` events are in flight."""
        while not self.free:
            await asyncio.wait(list(self.tasks.values()), return_when=asyncio.FIRST_COMPLETED)

    async def renew_claims(self, stop: asyncio.Event) -> None:
        """Until `stop`: renew the claims of the events in flight every `renew_every` s.
        (One call for all of them, whatever their number.)"""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.renew_every):
                    await stop.wait()
            ids = list(self.tasks)
            if not ids:
                continue
            try:
                kept = await self.renew(ids)
            except (RedisError, OSError) as exc:
                log.warning("dispatcher.renew_failed", error=repr(exc))
                continue
            lost = {i for i in ids if i in self.tasks} - set(kept)
            if lost:  # acknowledged meanwhile, or taken over after a renewal came too late
                log.info("dispatcher.claims_not_renewed", entries=sorted(lost))

    async def drain(self) -> None:
        """Wait for every event in flight to be handled."""
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()))

    async def cancel(self) -> None:
        """Cancel the events still in flight and wait until they have stopped."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
