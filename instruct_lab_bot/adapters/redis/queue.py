"""Redis adapter: every key and stream name, and every atomic step on them.

Two streams with consumer groups: `events` (verified webhook intents, written by the server,
read by dispatchers) and `jobs` (read by workers). Entries are acknowledged only once their
work reached an end state, so a crash leaves them pending for another consumer to claim.
Job state lives in one hash per job; transitions run as Lua scripts, so two processes can
never both move one job out of the same state.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from instruct_lab_bot.core.jobs import Job, State, can_transition

PREFIX = "ilab-bot:"
EVENTS_STREAM = PREFIX + "events"
JOBS_STREAM = PREFIX + "jobs"
DISPATCH_GROUP = "dispatchers"
WORKER_GROUP = "workers"
STREAM_MAXLEN = 100_000
DELIVERY_TTL = 7 * 24 * 3600
DEAD_STREAM = PREFIX + "dead"
SCHEMA_VERSION = "1"
HISTORY_TTL = 30 * 24 * 3600  # default for job records; settings override it
ACTIVE_TTL = 3 * 24 * 3600  # safety net: an active-job claim never outlives a stuck job


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


ALL_JOBS_KEY = PREFIX + "jobs-by-time"  # zset: job id → created_at (status page, history)
WORKERS_KEY = PREFIX + "workers"  # zset: worker name → last heartbeat (registry)


def worker_key(name: str) -> str:
    """A live worker's registration (host, pid, version, current jobs); expires unless renewed."""
    return f"{PREFIX}worker:{name}"


def active_key(job: Job) -> str:
    """One live job per (repo, PR, head sha, command): a second request links to it."""
    return f"{PREFIX}active:{job.owner}/{job.repo}#{job.pr_number}:{job.head_sha}:{job.command}"


# -- GitHub write governor and missed-deliveries reconciler (issue 4) -----------------
REDELIVERY_MARK_TTL = 4 * 24 * 3600  # > GitHub's 3-day redelivery window
RECONCILER_LOCK = PREFIX + "reconciler:lock"


def github_writes_key(installation_id: int) -> str:
    """Sliding window (zset of grant times) of one installation's GitHub writes."""
    return f"{PREFIX}gh:writes:{installation_id}"


def github_pause_key(installation_id: int) -> str:
    """Set while GitHub has told us to hold this installation's writes (rate limited)."""
    return f"{PREFIX}gh:pause:{installation_id}"


def redelivered_key(guid: str) -> str:
    """Marks a webhook delivery (by GUID) the reconciler asked GitHub to redeliver."""
    return f"{PREFIX}redelivered:{guid}"


# -- end of the issue-4 governor/reconciler block -------------------------------------


# Store a delivery once: the same X-GitHub-Delivery twice appends one entry.
_ENQUEUE_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""

# Ends a job's active claim (for dedup) if it still names this job; bounds its history.
_END_LUA = """
local function end_job(job_key, active_key, job_id, ttl)
  redis.call('EXPIRE', job_key, ttl)
  if redis.call('GET', active_key) == job_id then redis.call('DEL', active_key) end
end
"""

# Move a job to ARGV[1] only if its state is one of ARGV[5..4+n]; then set the field pairs.
# KEYS: job, active. ARGV: new state, n, terminal ('1'/'0'), ttl, states..., fields...
_TRANSITION = (
    _END_LUA
    + """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
local n = tonumber(ARGV[2])
for i = 5, 4 + n do
  if ARGV[i] == current then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], unpack(ARGV, 5 + n))
    if ARGV[3] == '1' then
      end_job(KEYS[1], KEYS[2], redis.call('HGET', KEYS[1], 'id'), ARGV[4])
    end
    return {'ok', current}
  end
end
return {'refused', current}
"""
)

# Create a job hash, index it by PR and claim its (PR, sha, command) slot: all or nothing.
# KEYS: job, pr index, active, all-jobs index. ARGV: id, created_at, history ttl, active ttl,
# job key prefix, fields...
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ARGV[1]} end
local other = redis.call('GET', KEYS[3])
if other then
  local state = redis.call('HGET', ARGV[5] .. other, 'state')
  if state == 'queued' or state == 'running' then return {'active', other} end
end
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[4])
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
return {'created', ARGV[1]}
"""

# Start (or take over) a job for one worker: queued → running; with ARGV[4] == '1' also a
# running job whose lease expired. Counts the attempt; refuses past the attempt limit. Returns
# the job's fields too, so starting a job costs one round trip.
# KEYS: job. ARGV: worker, now, max attempts, allow running, lease seconds.
_START = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
if current ~= 'queued' and not (current == 'running' and ARGV[4] == '1') then
  return {'refused', current, redis.call('HGETALL', KEYS[1])}
end
if current == 'running' then
  local beat = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0')
  if beat > tonumber(ARGV[2]) - tonumber(ARGV[5]) then
    return {'refused', current, redis.call('HGETALL', KEYS[1])}
  end
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[3]) then
  return {'exhausted', current, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'started_at', ARGV[2],
           'heartbeat_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {'ok', current, redis.call('HGETALL', KEYS[1])}
"""

# Renew a lease: reset the entry's idle time (XCLAIM JUSTID keeps the delivery count) if this
# worker still owns both the stream entry and the job. 0: the lease was lost; 2: someone asked
# to cancel the job.
# KEYS: stream, job. ARGV: group, worker, entry id, now.
_HEARTBEAT = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[2], 'worker') ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
redis.call('HSET', KEYS[2], 'heartbeat_at', ARGV[4])
local cancel = redis.call('HGET', KEYS[2], 'cancel_requested')
if cancel and cancel ~= '' then return 2 end
return 1
"""

# End a running job and acknowledge its entry in one step, only for the worker that runs it.
# KEYS: job, stream, active. ARGV: group, entry id, worker, new state, ttl, fields...
_FINISH = (
    _END_LUA
    + """
local current = redis.call('HGET', KEYS[1], 'state')
if current ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[3] then
  return {'refused', current or ''}
end
redis.call('HSET', KEYS[1], 'state', ARGV[4], unpack(ARGV, 6))
end_job(KEYS[1], KEYS[3], redis.call('HGET', KEYS[1], 'id'), ARGV[5])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
return {'ok', current}
"""
)

# Give a running job back (graceful shutdown): a fresh entry so another worker starts it now,
# not after the lease expires; the attempt does not count against the job.
# KEYS: job, stream. ARGV: group, entry id, worker, maxlen, traceparent.
_HAND_BACK = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running'
   or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[3] then
  return false
end
local job_id = redis.call('HGET', KEYS[1], 'id')
local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'v', '1', 'job', job_id,
                         'traceparent', ARGV[5])
redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '', 'stream_id', entry)
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
return entry
"""

# Move a job that used up its attempts to the dead-letter stream.
# KEYS: job, stream, dead stream, active. ARGV: group, entry id, reason, ttl, now, maxlen.
_DEAD = (
    _END_LUA
    + """
local current = redis.call('HGET', KEYS[1], 'state')
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
if current ~= 'queued' and current ~= 'running' then return {'refused', current or ''} end
local job_id = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'state', 'dead', 'error', ARGV[3], 'finished_at', ARGV[5],
           'worker', '')
end_job(KEYS[1], KEYS[4], job_id, ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'job', job_id, 'reason', ARGV[3])
return {'ok', current}
"""
)


@dataclass(frozen=True)
class StreamEntry:
    stream: str
    id: str
    fields: dict[str, str]


@dataclass(frozen=True)
class TransitionResult:
    status: str  # ok | refused | missing | exhausted
    previous: State | None
    job: Job | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class CreateResult:
    status: str  # created | exists | active
    job_id: str


def _result(status: str, previous: str) -> TransitionResult:
    return TransitionResult(status, State(previous) if previous else None)


def _flat(fields: Mapping[str, Any]) -> list[str]:
    flat: list[str] = []
    for key, value in fields.items():
        flat += [key, str(value)]
    return flat


class Queue:
    """Thin async wrapper over one Redis connection pool."""

    def __init__(self, client: aioredis.Redis, *, history_ttl: int = HISTORY_TTL) -> None:
        self.redis = client
        self.history_ttl = history_ttl
        # Calls to `add_event` from one event-loop tick, waiting for their shared round trip.
        self._event_batch: list[tuple[list[Any], asyncio.Future[Any]]] | None = None
        self._enqueue_once = client.register_script(_ENQUEUE_ONCE)
        self._transition = client.register_script(_TRANSITION)
        self._start = client.register_script(_START)
        self._create = client.register_script(_CREATE)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._finish = client.register_script(_FINISH)
        self._hand_back = client.register_script(_HAND_BACK)
        self._dead = client.register_script(_DEAD)

    @classmethod
    def from_url(cls, url: str, *, history_ttl: int = HISTORY_TTL) -> Queue:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        return cls(client, history_ttl=history_ttl)

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
        """Append a verified webhook intent once per delivery; None for a redelivery.

        Concurrent calls (one per webhook request) made in the same event-loop tick share one
        pipeline: one round trip instead of one each. Every call is still its own atomic
        script, and each caller gets its own reply or the error (a broken connection fails
        them all). EVAL, not EVALSHA: a Redis that lost its script cache needs no reload step.
        """
        flat: list[str] = ["v", SCHEMA_VERSION, "delivery", delivery_id]
        for key, value in fields.items():
            flat += [key, value]
        call = [delivery_key(delivery_id), EVENTS_STREAM, DELIVERY_TTL, STREAM_MAXLEN, *flat]
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        if self._event_batch is not None:
            self._event_batch.append((call, reply))
            return cast(str | None, await reply or None)
        batch = self._event_batch = [(call, reply)]

        async def store() -> None:
            self._event_batch = None  # later calls start the next batch
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for args, _reply in batch:
                        pipe.eval(_ENQUEUE_ONCE, 2, *args)
                    results = await pipe.execute(raise_on_error=False)
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

        task = loop.create_task(store())  # runs after this tick's other handlers have joined
        result = await asyncio.shield(reply)
        await asyncio.shield(task)
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

    async def create_job(self, job: Job) -> CreateResult:
        """Store a new job and claim its (PR, sha, command) slot.

        `exists`: this id is stored already (a redelivered event: resume it). `active`: another
        job for the same PR head and command is queued or running; `job_id` names it.
        """
        flat: list[str] = []
        for key, value in job.to_fields().items():
            flat += [key, value]
        status, job_id = await self._create(
            keys=[
                job_key(job.id),
                pr_jobs_key(job.owner, job.repo, job.pr_number),
                active_key(job),
                ALL_JOBS_KEY,
            ],
            args=[job.id, repr(job.created_at), self.history_ttl, ACTIVE_TTL, job_key(""), *flat],
        )
        return CreateResult(status, job_id)

    async def get_job(self, job_id: str) -> Job | None:
        data: dict[str, str] = await cast(Any, self.redis).hgetall(job_key(job_id))
        if not data or "state" not in data:
            return None
        return Job.from_fields(data)

    async def update_job(self, job_id: str, **fields: Any) -> None:
        mapping = {k: str(v) for k, v in fields.items()}
        await cast(Any, self.redis).hset(job_key(job_id), mapping=mapping)

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
        job = await self.get_job(job_id)
        active = active_key(job) if job else job_key(job_id)
        status, previous = await self._transition(
            keys=[job_key(job_id), active],
            args=[
                new.value,
                len(allowed),
                "1" if new.terminal else "0",
                self.history_ttl,
                *allowed,
                *_flat(fields),
            ],
        )
        return _result(status, previous)

    async def start_job(
        self,
        job_id: str,
        worker: str,
        *,
        max_attempts: int = 1_000_000,
        takeover: bool = False,
        lease: float = 0.0,
    ) -> TransitionResult:
        """queued → running for exactly one worker; with `takeover`, also a job whose worker
        lost its lease. `exhausted` (in `status`) means the attempts are used up. `job` is the
        job as stored after the step (None if there is no such job)."""
        reply = await self._start(
            keys=[job_key(job_id)],
            args=[worker, repr(time.time()), max_attempts, "1" if takeover else "0", lease],
        )
        status, previous = reply[0], reply[1]
        flat = reply[2] if len(reply) > 2 else []
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        job = Job.from_fields(fields) if "state" in fields else None
        return TransitionResult(status, State(previous) if previous else None, job)

    async def heartbeat(self, entry: StreamEntry, job_id: str, worker: str) -> str:
        """Renew this worker's lease on a job: "ok", "lost" (another worker took it over) or
        "cancel" (someone asked to cancel it)."""
        result = await self._heartbeat(
            keys=[entry.stream, job_key(job_id)],
            args=[WORKER_GROUP, worker, entry.id, repr(time.time())],
        )
        return {0: "lost", 1: "ok", 2: "cancel"}[int(result)]

    async def request_cancel(self, job_id: str, login: str) -> None:
        """Ask the worker running a job to stop it (seen at its next heartbeat)."""
        await cast(Any, self.redis).hset(job_key(job_id), "cancel_requested", login or "?")

    def memo_key(self, name: str) -> str:
        return f"{PREFIX}memo:{name}"

    async def finish_job(
        self, entry: StreamEntry, job: Job, worker: str, state: State, **fields: Any
    ) -> bool:
        """Store the end state and acknowledge the entry at once; False if not ours any more."""
        status, _previous = await self._finish(
            keys=[job_key(job.id), entry.stream, active_key(job)],
            args=[WORKER_GROUP, entry.id, worker, state.value, self.history_ttl, *_flat(fields)],
        )
        return bool(status == "ok")

    async def hand_back(self, entry: StreamEntry, job: Job, worker: str) -> str | None:
        """Requeue a running job at the head of the line (graceful shutdown)."""
        result = await self._hand_back(
            keys=[job_key(job.id), entry.stream],
            args=[WORKER_GROUP, entry.id, worker, STREAM_MAXLEN, job.traceparent],
        )
        return cast(str | None, result or None)

    async def dead_letter(self, entry: StreamEntry, job: Job, reason: str) -> bool:
        status, _previous = await self._dead(
            keys=[job_key(job.id), entry.stream, DEAD_STREAM, active_key(job)],
            args=[
                WORKER_GROUP,
                entry.id,
                reason,
                self.history_ttl,
                repr(time.time()),
                STREAM_MAXLEN,
            ],
        )
        return bool(status == "ok")

    async def dead_letters(self, count: int = 100) -> list[StreamEntry]:
        reply: Any = await self.redis.xrevrange(DEAD_STREAM, count=count)
        return [StreamEntry(DEAD_STREAM, entry_id, dict(values)) for entry_id, values in reply]

    async def requeue_dead(self, entry_id: str) -> Job | None:
        """Admin action: give a dead job a fresh set of attempts."""
        reply: Any = await self.redis.xrange(DEAD_STREAM, entry_id, entry_id)
        if not reply:
            return None
        job = await self.get_job(dict(reply[0][1])["job"])
        if job is None:
            return None
        fresh = job.evolve(state=State.QUEUED, attempts=0, worker="", error="", finished_at=0.0)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job.id), mapping=cast(Any, fresh.to_fields()))
            pipe.persist(job_key(job.id))
            pipe.xadd(
                JOBS_STREAM,
                {"v": SCHEMA_VERSION, "job": job.id, "traceparent": job.traceparent},
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
            pipe.xdel(DEAD_STREAM, entry_id)
            await pipe.execute()
        return fresh

    async def drop_dead(self, entry_id: str) -> bool:
        return bool(await self.redis.xdel(DEAD_STREAM, entry_id))

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

    async def register_worker(self, name: str, info: Mapping[str, str], ttl: float) -> None:
        """Announce or renew a live worker; the registration lapses `ttl` after the last call."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(worker_key(name), mapping=cast(Any, {**info, "heartbeat_at": repr(now)}))
            pipe.pexpire(worker_key(name), int(ttl * 1000))
            pipe.zadd(WORKERS_KEY, {name: now})
            pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - max(ttl, 3600))
            await pipe.execute()

    async def unregister_worker(self, name: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(worker_key(name))
            pipe.zrem(WORKERS_KEY, name)
            await pipe.execute()

    async def live_workers(self) -> list[dict[str, str]]:
        """Registrations that have not lapsed, newest heartbeat first."""
        names: Any = await self.redis.zrevrange(WORKERS_KEY, 0, 999)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(worker_key(name))
            found: Any = await pipe.execute()
        return [dict(info) for info in found if info]

    async def recent_job_ids(self, count: int = 100) -> list[str]:
        return cast(list[str], await self.redis.zrevrange(ALL_JOBS_KEY, 0, count - 1))

    async def get_jobs(self, job_ids: list[str]) -> list[Job]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(job_key(job_id))
            found: Any = await pipe.execute()
        return [Job.from_fields(dict(data)) for data in found if data and "state" in data]

    async def pr_job_ids(self, owner: str, repo: str, pr_number: int) -> list[str]:
        return cast(list[str], await self.redis.zrange(pr_jobs_key(owner, repo, pr_number), 0, -1))

    async def claim_once(self, marker: str, ttl: int = DELIVERY_TTL) -> bool:
        """True the first time `marker` is claimed: guards side effects against redelivery."""
        return bool(await self.redis.set(once_key(marker), "1", nx=True, ex=ttl))

    async def release_once(self, marker: str) -> None:
        await self.redis.delete(once_key(marker))
