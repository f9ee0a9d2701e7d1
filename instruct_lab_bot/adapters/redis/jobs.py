"""Job records: one hash per job, indexed by PR and by time. Every state change runs as one
Lua script, so two processes can never both move one job out of the same state."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from instruct_lab_bot.adapters.redis.base import RedisPart, flat
from instruct_lab_bot.adapters.redis.keys import (
    ACTIVE_TTL,
    ALL_JOBS_KEY,
    SCHEMA_VERSION,
    STREAM_MAX_AGE,
    STREAM_MAXLEN,
    WORKER_GROUP,
    active_key,
    active_key_at,
    job_key,
    job_stream,
    pr_jobs_key,
    result_claim_key,
)
from instruct_lab_bot.adapters.redis.streams import StreamEntry, append_trimmed, min_id
from instruct_lab_bot.core.jobs import (
    RUN_FACTS,
    Job,
    State,
    bounded_field,
    bounded_fields,
    can_transition,
)
from instruct_lab_bot.core.refs import PullRequestRef


@dataclass(frozen=True)
class TransitionResult:
    status: str  # ok | refused | missing | exhausted | recorded
    previous: State | None
    job: Job | None = None
    recorded: State | None = None  # `recorded`: the end state its recorded result reports

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class CreateResult:
    status: str  # created | exists | active
    job_id: str


def queue_entry(job: Job) -> dict[str, str]:
    """The jobs-stream entry that queues `job`."""
    return {"v": SCHEMA_VERSION, "job": job.id, "traceparent": job.traceparent}


async def read_job(client: aioredis.Redis, job_id: str) -> Job | None:
    data: dict[str, str] = await cast(Any, client).hgetall(job_key(job_id))
    if not data or "state" not in data:
        return None
    return Job.from_fields(data)


class JobStore(RedisPart):
    """Create, read, queue and move jobs through their states."""

    async def create_job(self, job: Job) -> CreateResult:
        """Store a new job and claim its (PR, sha, command) slot.

        `exists`: this id is stored already (a redelivered event: resume it). `active`: another
        job for the same PR head and command is queued or running; `job_id` names it.
        """
        while True:  # the claim's holder is read first: a script declares every key it reads
            other = cast(str | None, await self.redis.get(active_key(job))) or ""
            status, job_id = await self._script("create_job")(
                keys=[
                    job_key(job.id),
                    pr_jobs_key(job.pull_request),
                    active_key(job),
                    ALL_JOBS_KEY,
                    job_key(other or job.id),
                ],
                args=[
                    job.id,
                    repr(job.created_at),
                    self.history_ttl,
                    ACTIVE_TTL,
                    other,
                    *flat(job.to_fields()),
                ],
            )
            if status != "retry":  # "retry": the claim changed hands since it was read
                return CreateResult(status, job_id)

    async def get_job(self, job_id: str) -> Job | None:
        data: dict[str, str] = await self._tick.command("HGETALL", job_key(job_id))
        return Job.from_fields(data) if data and "state" in data else None

    async def run_facts(self, job_id: str) -> dict[str, str]:
        """The `RUN_FACTS` recorded on a job's hash while it ran (those set; a finishing worker
        reads just these, not the whole record it has)."""
        values = await self._tick.command("HMGET", job_key(job_id), *RUN_FACTS)
        return {name: value for name, value in zip(RUN_FACTS, values, strict=True) if value}

    async def get_jobs(self, job_ids: list[str]) -> list[Job]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(job_key(job_id))
            found: Any = await pipe.execute()
        return [Job.from_fields(dict(data)) for data in found if data and "state" in data]

    async def recent_job_ids(self, count: int = 100) -> list[str]:
        return cast(list[str], await self.redis.zrevrange(ALL_JOBS_KEY, 0, count - 1))

    async def slot_job(self, pull: PullRequestRef, head_sha: str, command: str) -> Job | None:
        """The newest job of the (PR, head sha, command) slot, if any, live (it holds the slot)
        or ended (kept as long as its history): two reads, whatever the number of requests
        that came before."""
        holder = cast(str | None, await self.redis.get(active_key_at(pull, head_sha, command)))
        return await read_job(self.redis, holder) if holder else None

    async def repeatable_commands(self, pull: PullRequestRef, newest: int = 20) -> set[str]:
        """The commands of the PR's queued, running or succeeded jobs among its `newest` ones
        (a bounded read: a hint, `slot_job` is the authority)."""
        ids = cast(list[str], await self.redis.zrevrange(pr_jobs_key(pull), 0, newest - 1))
        if not ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(job_key(job_id), "state", "command")
            found: list[list[str | None]] = await pipe.execute()
        repeatable = ("queued", "running", "succeeded")
        return {str(command) for state, command in found if state in repeatable}

    async def pr_job_ids(self, pull: PullRequestRef) -> list[str]:
        return cast(list[str], await self.redis.zrange(pr_jobs_key(pull), 0, -1))

    async def update_job(self, job_id: str, **fields: Any) -> None:
        await cast(Any, self.redis).hset(job_key(job_id), mapping=bounded_fields(fields))

    async def enqueue_job(self, job: Job) -> str:
        """Queue a job on its pool's stream (`job_stream`: its capability's)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            append_trimmed(pipe, job_stream(job), queue_entry(job), STREAM_MAX_AGE)
            entry_id, _trimmed = await pipe.execute()
        return cast(str, entry_id)

    async def transition(self, job_id: str, new: State, **fields: Any) -> TransitionResult:
        """Atomically move a job to `new` from any state the state machine allows."""
        allowed = [s.value for s in State if can_transition(s, new)]
        job = await self.get_job(job_id)
        active = active_key(job) if job else job_key(job_id)
        status, previous = await self._script("transition")(
            keys=[job_key(job_id), active],
            args=[
                new.value,
                len(allowed),
                "1" if new.terminal else "0",
                self.history_ttl,
                *allowed,
                *flat(fields),
            ],
        )
        return TransitionResult(status, State(previous) if previous else None)

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
        reply = await self._tick.script(
            "start_job",
            [job_key(job_id), result_claim_key(job_id)],
            [worker, repr(time.time()), max_attempts, "1" if takeover else "0", lease],
        )
        status, previous = reply[0], reply[1]
        pairs = reply[2] if len(reply) > 2 else []
        fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
        job = Job.from_fields(fields) if "state" in fields else None
        recorded = State(reply[3]) if len(reply) > 3 else None
        return TransitionResult(status, State(previous) if previous else None, job, recorded)

    async def heartbeat(self, entry: StreamEntry, job_id: str, worker: str) -> str:
        """Renew this worker's lease on a job: "ok", "lost" (another worker took it over) or
        "cancel" (someone asked to cancel it)."""
        result = await self._script("heartbeat")(
            keys=[entry.stream, job_key(job_id)],
            args=[WORKER_GROUP, worker, entry.id, repr(time.time())],
        )
        return {0: "lost", 1: "ok", 2: "cancel"}[int(result)]

    async def request_cancel(self, job_id: str, login: str) -> None:
        """Ask the worker running a job to stop it (seen at its next heartbeat)."""
        requester = bounded_field("cancel_requested", login or "?")
        await cast(Any, self.redis).hset(job_key(job_id), "cancel_requested", requester)

    async def finish_job(
        self, entry: StreamEntry, job: Job, worker: str, state: State, **fields: Any
    ) -> bool:
        """Store the end state and acknowledge the entry at once; False if not ours any more."""
        status, _previous = await self._durable_script(
            "finish_job",
            [job_key(job.id), entry.stream, active_key(job)],
            [WORKER_GROUP, entry.id, worker, state.value, self.history_ttl, *flat(fields)],
        )
        return bool(status == "ok")

    async def hand_back(self, entry: StreamEntry, job: Job, worker: str) -> str | None:
        """Requeue a running job at the head of the line (graceful shutdown)."""
        result = await self._script("hand_back")(
            keys=[job_key(job.id), entry.stream],
            args=[
                WORKER_GROUP,
                entry.id,
                worker,
                STREAM_MAXLEN,
                job.traceparent,
                min_id(STREAM_MAX_AGE),
            ],
        )
        return cast(str | None, result or None)
