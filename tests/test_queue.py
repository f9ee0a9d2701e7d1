"""The Redis adapter against a real redis-server."""

import asyncio

from instruct_lab_bot.jobs import Job, State
from instruct_lab_bot.queue import EVENTS_STREAM, JOBS_STREAM, WORKER_GROUP, Queue


def make_job(job_id: str = "j1") -> Job:
    return Job(
        id=job_id,
        command="generate",
        installation_id=1,
        owner="o",
        repo="r",
        pr_number=2,
        requester="alice",
        head_sha="c" * 40,
    )


async def test_same_delivery_is_stored_once(redis_url: str) -> None:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    await queue.ensure_groups()  # BUSYGROUP tolerated
    first = await queue.add_event("delivery-1", {"type": "commands", "intent": "{}"})
    again = await queue.add_event("delivery-1", {"type": "commands", "intent": "{}"})
    other = await queue.add_event("delivery-2", {"type": "commands", "intent": "{}"})
    assert first and other and again is None
    assert await queue.redis.xlen(EVENTS_STREAM) == 2
    await queue.aclose()


async def test_only_one_worker_starts_a_job(redis_url: str) -> None:
    queues = [Queue.from_url(redis_url) for _ in range(8)]
    await queues[0].create_job(make_job())
    results = await asyncio.gather(*(q.start_job("j1", f"w{i}") for i, q in enumerate(queues)))
    assert sum(r.ok for r in results) == 1
    assert {r.previous for r in results if not r.ok} == {State.RUNNING}
    job = await queues[0].get_job("j1")
    assert job is not None and job.state is State.RUNNING and job.attempts == 1
    done = await queues[1].transition("j1", State.SUCCEEDED, finished_at=5)
    assert done.ok and done.previous is State.RUNNING
    assert not (await queues[2].transition("j1", State.FAILED)).ok  # terminal stays terminal
    assert not (await queues[2].start_job("j1", "late")).ok
    missing = await queues[0].transition("nope", State.RUNNING)
    assert not missing.ok and missing.previous is None
    for q in queues:
        await q.aclose()


async def test_create_job_is_idempotent_and_indexed_by_pr(redis_url: str) -> None:
    queue = Queue.from_url(redis_url)
    assert await queue.create_job(make_job())
    assert not await queue.create_job(make_job().evolve(requester="mallory"))
    job = await queue.get_job("j1")
    assert job is not None and job.requester == "alice"
    assert await queue.pr_job_ids("o", "r", 2) == ["j1"]
    await queue.aclose()


async def test_pending_entries_of_a_dead_consumer_are_claimed(redis_url: str) -> None:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    await queue.enqueue_job(make_job())
    taken = await queue.read(JOBS_STREAM, WORKER_GROUP, "dead-worker", block_ms=100)
    assert len(taken) == 1
    assert await queue.read(JOBS_STREAM, WORKER_GROUP, "live", block_ms=10) == []
    claimed = await queue.claim_stale(JOBS_STREAM, WORKER_GROUP, "live", min_idle_ms=0)
    assert [e.fields["job"] for e in claimed] == ["j1"]
    await queue.ack(claimed[0], WORKER_GROUP)
    assert await queue.claim_stale(JOBS_STREAM, WORKER_GROUP, "live", min_idle_ms=0) == []
    assert await queue.claim_once("m") and not await queue.claim_once("m")
    await queue.release_once("m")
    assert await queue.claim_once("m")
    await queue.aclose()
