"""Stream plumbing: consumer groups, webhook events in (deduplicated per delivery), reading,
acknowledging and claiming entries that a dead consumer left pending.

Entries are acknowledged only once their work reached an end state, so a crash leaves them
pending for another consumer to claim.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.exceptions import ResponseError

from instruct_lab_bot.adapters.redis.base import RedisPart, flat
from instruct_lab_bot.adapters.redis.keys import (
    DELIVERY_TTL,
    DISPATCH_GROUP,
    EVENTS_STREAM,
    SCHEMA_VERSION,
    STREAM_MAX_AGE,
    STREAM_MAXLEN,
    WORKER_GROUP,
    comment_key,
    delivery_key,
    job_key,
    jobs_stream,
)
from instruct_lab_bot.adapters.redis.migrate import migrate_jobs_stream, migrate_prefix
from instruct_lab_bot.adapters.redis.scripts import source
from instruct_lab_bot.core.command_table import CAPABILITIES
from instruct_lab_bot.core.refs import RepoRef

_Batch = list[tuple[list[Any], asyncio.Future[Any]]]


@dataclass(frozen=True)
class StreamEntry:
    stream: str
    id: str
    fields: dict[str, str]


def min_id(max_age: float, now: float | None = None) -> str:
    """The stream id below which entries are older than `max_age` seconds (for `XTRIM MINID`)."""
    oldest_ms = int(((time.time() if now is None else now) - max_age) * 1000)
    return f"{max(oldest_ms, 0)}-0"


def append_trimmed(pipe: Any, stream: str, fields: Mapping[str, str], max_age: float) -> None:
    """Queue an XADD on `pipe`, trimmed by length and by age (one round trip with the rest)."""
    pipe.xadd(stream, cast(Any, dict(fields)), maxlen=STREAM_MAXLEN, approximate=True)
    pipe.xtrim(stream, minid=min_id(max_age), approximate=False)


def consumer_name() -> str:
    """Unique per process and readable in `XINFO CONSUMERS`: host, pid, random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class EventStream(RedisPart):
    """Groups, events in, entries out."""

    # Calls to `add_event` from one event-loop tick, waiting for their shared round trip;
    # per instance, set to None by `Queue.__init__`.
    _event_batch: _Batch | None

    async def ensure_groups(
        self,
        *,
        events: bool = True,
        jobs: bool = True,
        capabilities: Sequence[str] = CAPABILITIES,
    ) -> None:
        """The consumer groups a process reads from or feeds (a worker: only its pools' jobs
        streams, so its Redis user needs no write access to the events stream), and, once
        after an upgrade, the legacy keys renamed."""
        await migrate_prefix(self.redis)
        wanted = [(EVENTS_STREAM, DISPATCH_GROUP)] if events else []
        wanted += [(jobs_stream(c), WORKER_GROUP) for c in capabilities] if jobs else []
        for stream, group in wanted:
            try:
                await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def migrate_jobs(self, lease: float) -> int:
        """Move what waits in the jobs stream from before worker pools to the pools' streams
        (dispatchers: at start and every lease); how many jobs moved."""
        return await migrate_jobs_stream(self.redis, WORKER_GROUP, STREAM_MAXLEN, lease)

    async def add_event(
        self,
        delivery_id: str,
        fields: Mapping[str, str],
        *,
        comment: tuple[RepoRef, int] | None = None,
    ) -> str | None:
        """Append a verified webhook intent once per delivery and, for a `comment` (owner,
        repo, comment id), once per comment; None for a redelivery or a replayed comment.

        Concurrent calls (one per webhook request) made in the same event-loop tick share one
        pipeline: one round trip instead of one each. Every call is still its own atomic
        script, and each caller gets its own reply or the error (a broken connection fails
        them all). EVAL, not EVALSHA: a Redis that lost its script cache needs no reload step.
        """
        flat: list[str] = ["v", SCHEMA_VERSION, "delivery", delivery_id]
        for key, value in fields.items():
            flat += [key, value]
        keys = [delivery_key(delivery_id), EVENTS_STREAM]
        if comment is not None:
            keys.append(comment_key(*comment))
        oldest = min_id(STREAM_MAX_AGE)
        call: list[Any] = [len(keys), *keys, DELIVERY_TTL, STREAM_MAXLEN, oldest, *flat]
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        if self._event_batch is not None:
            self._event_batch.append((call, reply))
            return cast(str | None, await reply or None)
        batch = self._event_batch = [(call, reply)]
        # Runs after this tick's other handlers have joined the batch.
        task = loop.create_task(self._store_events(batch))
        result = await asyncio.shield(reply)
        await asyncio.shield(task)
        return cast(str | None, result or None)

    async def _store_events(self, batch: _Batch) -> None:
        """Send one batch of `add_event` calls in one pipeline; settle every caller's reply."""
        self._event_batch = None  # later calls start the next batch
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for args, _reply in batch:
                    pipe.eval(source("enqueue_once"), *args)
                if self.wait_replicas:
                    self._wait(pipe)
                results = await pipe.execute(raise_on_error=False)
            if self.wait_replicas:  # a stored delivery must outlive a failover before the 2xx
                self._check_replicas(results.pop())
        except BaseException as exc:
            for _args, waiting in batch:
                if not waiting.done():
                    waiting.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_args, waiting), result in zip(batch, results, strict=True):
            if waiting.done():
                continue
            if isinstance(result, Exception):
                waiting.set_exception(result)
            else:
                waiting.set_result(result)

    async def read(
        self,
        stream: str | Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 1,
        block_ms: int | None = 5000,
    ) -> list[StreamEntry]:
        """New entries for this consumer from one stream or several (one XREADGROUP; `count`
        is per stream, so several streams may give one each: `read_one` takes just one);
        blocks up to `block_ms` (never busy-polls; None: answers at once)."""
        streams = [stream] if isinstance(stream, str) else list(stream)
        reply: Any = await self.redis.xreadgroup(
            group, consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms
        )
        return [
            StreamEntry(str(name), entry_id, dict(values))
            for name, entries in reply or ()
            for entry_id, values in entries
        ]

    async def ack(self, entry: StreamEntry, group: str) -> None:
        await self._tick.command("XACK", entry.stream, group, entry.id)

    async def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int = 10
    ) -> list[StreamEntry]:
        """Entries left pending by consumers idle for `min_idle_ms` (dead processes).

        Entries trimmed from the stream meanwhile come back empty: they are acknowledged.
        """
        reply: Any = await self.redis.xautoclaim(
            stream, group, consumer, min_idle_ms, "0-0", count=count
        )
        claimed = reply[1]
        gone = [entry_id for entry_id, values in claimed if not values]
        if gone:
            await self.redis.xack(stream, group, *gone)
        return [StreamEntry(stream, i, dict(v)) for i, v in claimed if v]

    async def claim_untouched(
        self, stream: str, group: str, consumer: str, entry_id: str, idle_ms: int
    ) -> StreamEntry | None:
        """Take back one pending entry this consumer set aside `idle_ms` ago, unless anyone
        claimed or renewed it since (its idle time is then shorter): None then, or when the
        entry is gone from the stream (it is acknowledged)."""
        reply: Any = await self.redis.xclaim(stream, group, consumer, max(0, idle_ms), [entry_id])
        claimed = [(i, v) for i, v in reply or []]
        gone = [i for i, v in claimed if not v]
        if gone:
            await self.redis.xack(stream, group, *gone)
        return next((StreamEntry(stream, i, dict(v)) for i, v in claimed if v), None)

    async def renew_claims(
        self, stream: str, group: str, consumer: str, entry_ids: Sequence[str]
    ) -> list[str]:
        """Reset the idle time of entries `consumer` is still handling, so `claim_stale` of
        another consumer leaves them alone; the ids still ours (others were taken over or
        acknowledged meanwhile)."""
        if not entry_ids:
            return []
        renewed: Any = await self._script("renew_claims")(
            keys=[stream], args=[group, consumer, *entry_ids]
        )
        return [str(entry_id) for entry_id in renewed]

    async def read_one(
        self, streams: Sequence[str], group: str, consumer: str, *, block_ms: int = 1000
    ) -> StreamEntry | None:
        """At most one new entry from any of `streams` (`read_batch` of one)."""
        found = await self.read_batch(streams, group, consumer, count=1, block_ms=block_ms)
        return found[0] if found else None

    async def read_batch(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int,
        block_ms: int = 1000,
    ) -> list[StreamEntry]:
        """At most `count` new entries (a worker's free slots) from `streams` (its pools), the
        first listed first: each is asked in turn without blocking for the room left, then, if
        none had any, one XREADGROUP blocks on all of them. Should that return entries of
        several streams at once (its COUNT is per stream), those past `count` are put back at
        their stream's end for any worker (`release_entry`)."""
        found: list[StreamEntry] = []
        for stream in streams if len(streams) > 1 else ():  # one stream: just block on it
            found += await self.read(
                stream, group, consumer, count=count - len(found), block_ms=None
            )
            if len(found) >= count:
                break
        if found:
            return found
        found = await self.read(streams, group, consumer, count=count, block_ms=block_ms)
        for extra in found[count:]:
            await self.release_entry(extra, group, consumer)
        return found[:count]

    async def release_entry(self, entry: StreamEntry, group: str, consumer: str) -> str | None:
        """Put an entry `consumer` read but will not run back at its stream's end, for any
        consumer; its new id (None if it was not pending for `consumer` any more)."""
        moved = await self._script("release_entry")(
            keys=[entry.stream, job_key(entry.fields.get("job", ""))],
            args=[group, entry.id, consumer, STREAM_MAXLEN, *flat(entry.fields)],
        )
        return str(moved) if moved else None
