"""Redis adapter: every key and stream name, and every atomic step on them.

Two streams with consumer groups: `events` (verified webhook intents, written by the server,
read by dispatchers) and `jobs` (read by workers). Entries are acknowledged only once their
work reached an end state, so a crash leaves them pending for another consumer to claim.
Job state lives in one hash per job; transitions run as Lua scripts, so two processes can
never both move one job out of the same state.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from .jobs import Job, State, can_transition

PREFIX = "ilab-bot:"
EVENTS_STREAM = PREFIX + "events"
JOBS_STREAM = PREFIX + "jobs"
DISPATCH_GROUP = "dispatchers"
WORKER_GROUP = "workers"
STREAM_MAXLEN = 100_000
DELIVERY_TTL = 7 * 24 * 3600
SCHEMA_VERSION = "1"


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def delivery_key(delivery_id: str) -> str:
    return f"{PREFIX}delivery:{delivery_id}"


def once_key(marker: str) -> str:
    return f"{PREFIX}once:{marker}"


def pr_jobs_key(owner: str, repo: str, pr_number: int) -> str:
    return f"{PREFIX}pr:{owner}/{repo}#{pr_number}"


def consumer_name() -> str:
    """Unique per process and readable in `XINFO CONSUMERS`: host, pid, random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


# Store a delivery once: the same X-GitHub-Delivery twice appends one entry.
_ENQUEUE_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""

# Move a job to ARGV[1] only if its state is one of ARGV[3..2+n]; then set the field pairs.
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  if ARGV[i] == current then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], unpack(ARGV, 3 + n))
    return {'ok', current}
  end
end
return {'refused', current}
"""

# Create a job hash and index it by PR, unless it exists: all or nothing.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# Start a queued job: queued → running, recording the worker and counting the attempt.
_START = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
if current ~= 'queued' then return {'refused', current} end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'started_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {'ok', current}
"""


@dataclass(frozen=True)
class StreamEntry:
    stream: str
    id: str
    fields: dict[str, str]


@dataclass(frozen=True)
class TransitionResult:
    ok: bool
    previous: State | None


class Queue:
    """Thin async wrapper over one Redis connection pool."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._enqueue_once = client.register_script(_ENQUEUE_ONCE)
        self._transition = client.register_script(_TRANSITION)
        self._start = client.register_script(_START)
        self._create = client.register_script(_CREATE)

    @classmethod
    def from_url(cls, url: str) -> Queue:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        return cls(client)

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def ensure_groups(self) -> None:
        for stream, group in ((EVENTS_STREAM, DISPATCH_GROUP), (JOBS_STREAM, WORKER_GROUP)):
            try:
                await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # -- events (server → dispatcher) -------------------------------------------------

    async def add_event(self, delivery_id: str, fields: Mapping[str, str]) -> str | None:
        """Append a verified webhook intent once per delivery; None for a redelivery."""
        flat: list[str] = ["v", SCHEMA_VERSION, "delivery", delivery_id]
        for key, value in fields.items():
            flat += [key, value]
        result = await self._enqueue_once(
            keys=[delivery_key(delivery_id), EVENTS_STREAM],
            args=[DELIVERY_TTL, STREAM_MAXLEN, *flat],
        )
        return cast(str | None, result or None)

    # -- consuming --------------------------------------------------------------------

    async def read(
        self, stream: str, group: str, consumer: str, *, count: int = 1, block_ms: int = 5000
    ) -> list[StreamEntry]:
        """New entries for this consumer; blocks up to `block_ms` (never busy-polls)."""
        reply: Any = await self.redis.xreadgroup(
            group, consumer, {stream: ">"}, count=count, block=block_ms
        )
        return [
            StreamEntry(stream, entry_id, dict(values))
            for _name, entries in reply or ()
            for entry_id, values in entries
        ]

    async def ack(self, entry: StreamEntry, group: str) -> None:
        await self.redis.xack(entry.stream, group, entry.id)

    # -- jobs ---------------------------------------------------------------------------

    async def create_job(self, job: Job) -> bool:
        """Store a new job hash; False if one with this id exists (a redelivered event)."""
        flat: list[str] = []
        for key, value in job.to_fields().items():
            flat += [key, value]
        created = await self._create(
            keys=[job_key(job.id), pr_jobs_key(job.owner, job.repo, job.pr_number)],
            args=[job.id, repr(job.created_at), *flat],
        )
        return bool(created)

    async def get_job(self, job_id: str) -> Job | None:
        data = cast(dict[str, str], await self.redis.hgetall(job_key(job_id)))
        if not data or "state" not in data:
            return None
        return Job.from_fields(data)

    async def update_job(self, job_id: str, **fields: Any) -> None:
        mapping = {k: str(v) for k, v in fields.items()}
        await self.redis.hset(job_key(job_id), mapping=cast(Any, mapping))  # stubs: invariant

    async def enqueue_job(self, job: Job) -> str:
        entry_id = await self.redis.xadd(
            JOBS_STREAM,
            {"v": SCHEMA_VERSION, "job": job.id, "traceparent": job.traceparent},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        return cast(str, entry_id)

    async def transition(self, job_id: str, new: State, **fields: Any) -> TransitionResult:
        """Atomically move a job to `new` from any state the state machine allows."""
        allowed = [s.value for s in State if can_transition(s, new)]
        flat: list[str] = []
        for key, value in fields.items():
            flat += [key, str(value)]
        status, previous = await self._transition(
            keys=[job_key(job_id)], args=[new.value, len(allowed), *allowed, *flat]
        )
        return TransitionResult(status == "ok", State(previous) if previous else None)

    async def start_job(self, job_id: str, worker: str) -> TransitionResult:
        """queued → running for exactly one worker, however many read the same entry."""
        status, previous = await self._start(
            keys=[job_key(job_id)], args=[worker, repr(time.time())]
        )
        return TransitionResult(status == "ok", State(previous) if previous else None)

    async def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int = 10
    ) -> list[StreamEntry]:
        """Entries left pending by consumers idle for `min_idle_ms` (dead processes)."""
        _next, claimed, *_ = await self.redis.xautoclaim(
            stream, group, consumer, min_idle_ms, "0-0", count=count
        )
        return [StreamEntry(stream, i, dict(v)) for i, v in claimed if v]

    async def pr_job_ids(self, owner: str, repo: str, pr_number: int) -> list[str]:
        return cast(list[str], await self.redis.zrange(pr_jobs_key(owner, repo, pr_number), 0, -1))

    async def claim_once(self, marker: str, ttl: int = DELIVERY_TTL) -> bool:
        """True the first time `marker` is claimed: guards side effects against redelivery."""
        return bool(await self.redis.set(once_key(marker), "1", nx=True, ex=ttl))

    async def release_once(self, marker: str) -> None:
        await self.redis.delete(once_key(marker))
