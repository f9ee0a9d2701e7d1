"""Batched consuming: a worker reads as many entries as it has free slots and the jobs' Redis
calls of one tick share a round trip, with every guarantee of one-at-a-time consuming kept.

Real Redis; the worker is the real `Worker` with the stand-in runner of `test_worker_flow`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from instruct_lab_bot.adapters.redis.keys import WORKER_GROUP, jobs_stream
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import StreamEntry
from instruct_lab_bot.adapters.runner import OnLine, RunResult
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.services.worker.app import Worker
from tests.test_worker_flow import Argv, Cancel, Rig, ended, rig  # noqa: F401

GENERATE = jobs_stream("generate")
PRECHECK = jobs_stream("precheck")


def a_job(job_id: str, command: str = "generate") -> Job:
    return Job(
        id=job_id,
        command=command,
        installation_id=5,
        owner="o",
        repo="r",
        pr_number=3,
        requester="alice",
        head_sha=job_id.encode().hex().ljust(40, "0")[:40],  # one live job per head: each its own
        base_branch="main",
        check_run_id=77,
    )


async def queued(queue: Queue, job_id: str, command: str = "generate") -> Job:
    job = a_job(job_id, command)
    assert (await queue.create_job(job)).status == "created"
    await queue.enqueue_job(job)
    return job


async def until(predicate: Callable[[], Any], what: str, timeout: float = 30) -> None:
    """Wait for a condition (polled: it is Redis state, which sends no event)."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)
    assert await predicate(), what


async def pending(queue: Queue) -> int:
    summary: Any = await queue.redis.xpending(GENERATE, WORKER_GROUP)
    return int(summary["pending"])


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[Queue]:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    yield queue
    await queue.aclose()


async def test_a_batch_read_never_takes_more_than_the_room_left(queue: Queue) -> None:
    for name in ("g1", "g2"):
        await queued(queue, name)
    for name in ("p1", "p2"):
        await queued(queue, name, "precheck")
    first = await queue.read_batch([PRECHECK, GENERATE], WORKER_GROUP, "w1", count=3)
    assert [e.fields["job"] for e in first] == ["p1", "p2", "g1"]  # the first pool first
    rest = await queue.read_batch([PRECHECK, GENERATE], WORKER_GROUP, "w2", count=3)
    assert [e.fields["job"] for e in rest] == ["g2"]  # left for any other worker


async def test_a_blocking_read_over_several_pools_keeps_to_the_room(queue: Queue) -> None:
    """The blocking XREADGROUP's COUNT is per stream: what it gives past the room goes back."""
    reading = asyncio.create_task(
        queue.read_batch([PRECHECK, GENERATE], WORKER_GROUP, "w1", count=1, block_ms=20_000)
    )
    async with queue.redis.pipeline(transaction=True) as pipe:  # both arrive at once
        for job, stream in ((a_job("p1", "precheck"), PRECHECK), (a_job("g1"), GENERATE)):
            await queue.create_job(job)
            pipe.xadd(stream, {"v": "1", "job": job.id, "traceparent": ""})
        await pipe.execute()
    (taken,) = await reading
    later = await queue.read_batch([PRECHECK, GENERATE], WORKER_GROUP, "w2", count=5)
    assert sorted([taken.fields["job"], *(e.fields["job"] for e in later)]) == ["g1", "p1"]


async def test_calls_of_one_tick_share_a_pipeline_and_keep_their_own_replies(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    await queued(queue, "j1")
    ended_job = await queued(queue, "j2")
    assert (await queue.start_job(ended_job.id, "other")).ok
    pipelines = 0
    real = queue.redis.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(queue.redis, "pipeline", counted)
    await queue.redis.script_flush()  # as after a Redis restart: the scripts are loaded again
    started = await asyncio.gather(
        queue.start_job("j1", "w1"),
        queue.start_job("j2", "w1"),
        queue.start_job("missing", "w1"),
    )
    assert [s.status for s in started] == ["ok", "refused", "missing"]
    assert pipelines == 2  # the tick's calls, then those Redis had forgotten the script of
    stored = await queue.get_job("j1")
    assert stored is not None and stored.state is State.RUNNING and stored.worker == "w1"


async def test_a_batch_where_one_job_cannot_start_runs_the_others_once(
    rig: Callable[..., Rig],  # noqa: F811 - the fixture of test_worker_flow
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        return ended("exited", 0)

    r = rig(script)
    for name in ("b1", "b2", "b3"):
        await queued(r.queue, name)
    await r.queue.transition("b2", State.CANCELLED)  # ended before any worker took it
    await r.queue.redis.xadd(GENERATE, {"v": "1", "job": "gone", "traceparent": ""})
    reads: list[tuple[int, int]] = []
    real_read = r.queue.read_batch

    async def spied(*args: Any, count: int, **kwargs: Any) -> list[StreamEntry]:
        found = await real_read(*args, count=count, **kwargs)
        reads.append((count, len(found)))
        return found

    monkeypatch.setattr(r.queue, "read_batch", spied)
    worker = Worker(r.worker.deps, concurrency=4, name="w-batch")
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))

    async def settled() -> bool:
        jobs = [await r.queue.get_job(name) for name in ("b1", "b3")]
        done = all(j is not None and j.state is State.SUCCEEDED for j in jobs)
        return done and await pending(r.queue) == 0

    await until(settled, "b1 and b3 succeeded, nothing left pending")
    stop.set()
    await running
    assert (4, 4) in reads  # one read took the whole batch, as many as the free slots
    assert all(found <= room for room, found in reads)
    assert len(r.runner.argvs) == 2  # b1 and b3, once each
    b2 = await r.queue.get_job("b2")
    assert b2 is not None and b2.state is State.CANCELLED and b2.attempts == 0


async def test_a_batch_left_by_a_dead_worker_is_taken_over_once_each(
    rig: Callable[..., Rig],  # noqa: F811 - the fixture of test_worker_flow
) -> None:
    async def script(argv: Argv, on_line: OnLine, cancel: Cancel) -> RunResult:
        return ended("exited", 0)

    r = rig(script, lease_timeout=0.3)
    names = ["d1", "d2", "d3"]
    for name in names:
        await queued(r.queue, name)
    dead = await r.queue.read_batch([GENERATE], WORKER_GROUP, "dead", count=3)
    assert len(dead) == 3
    for entry in dead:  # started, then the worker died: no heartbeat, no end state
        assert (await r.queue.start_job(entry.fields["job"], "dead")).ok
    workers = [Worker(r.worker.deps, concurrency=3, name=f"w-{i}") for i in range(2)]
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(stop)) for w in workers]

    async def settled() -> bool:
        jobs = [await r.queue.get_job(name) for name in names]
        done = all(j is not None and j.state is State.SUCCEEDED for j in jobs)
        return done and await pending(r.queue) == 0

    await until(settled, "every job of the dead worker's batch succeeded elsewhere")
    stop.set()
    await asyncio.gather(*running)
    assert len(r.runner.argvs) == 3  # each job run once more, by one of the two workers
    for name in names:
        job = await r.queue.get_job(name)
        assert job is not None and job.attempts == 2 and job.worker in {"w-0", "w-1"}
