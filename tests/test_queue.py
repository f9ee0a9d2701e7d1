"""The Redis adapter against a real redis-server."""

import asyncio

from instruct_lab_bot.adapters.redis.keys import (
    DEAD_STREAM,
    EVENTS_STREAM,
    WORKER_GROUP,
    job_key,
    jobs_stream,
)
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.scripts import script, source
from instruct_lab_bot.adapters.redis.streams import StreamEntry
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import RepoRef

GENERATE_STREAM = jobs_stream("generate")  # the generate pool's jobs stream


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
    assert (await queue.create_job(make_job())).status == "created"
    again = await queue.create_job(make_job().evolve(requester="mallory"))
    assert (again.status, again.job_id) == ("exists", "j1")
    job = await queue.get_job("j1")
    assert job is not None and job.requester == "alice"
    assert await queue.pr_job_ids(RepoRef("o", "r").pull(2)) == ["j1"]
    await queue.aclose()


async def test_pending_entries_of_a_dead_consumer_are_claimed(redis_url: str) -> None:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    await queue.enqueue_job(make_job())
    taken = await queue.read(GENERATE_STREAM, WORKER_GROUP, "dead-worker", block_ms=100)
    assert len(taken) == 1
    assert await queue.read(GENERATE_STREAM, WORKER_GROUP, "live", block_ms=10) == []
    claimed = await queue.claim_stale(GENERATE_STREAM, WORKER_GROUP, "live", min_idle_ms=0)
    assert [e.fields["job"] for e in claimed] == ["j1"]
    await queue.ack(claimed[0], WORKER_GROUP)
    assert await queue.claim_stale(GENERATE_STREAM, WORKER_GROUP, "live", min_idle_ms=0) == []
    assert await queue.claim_once("m") and not await queue.claim_once("m")
    await queue.release_once("m")
    assert await queue.claim_once("m")
    await queue.aclose()


async def test_one_live_job_per_pr_head_and_command(redis_url: str) -> None:
    queue = Queue.from_url(redis_url, history_ttl=3600)
    assert (await queue.create_job(make_job("a"))).status == "created"
    second = await queue.create_job(make_job("b"))
    assert (second.status, second.job_id) == ("active", "a")
    other_sha = await queue.create_job(make_job("c").evolve(head_sha="d" * 40))
    assert other_sha.status == "created"
    await queue.start_job("a", "w")
    assert (await queue.transition("a", State.FAILED)).ok
    assert (await queue.create_job(make_job("e"))).status == "created"  # slot freed at the end
    assert 0 < await queue.redis.ttl(job_key("a")) <= 3600  # finished jobs expire
    await queue.aclose()


async def take(queue: Queue, consumer: str) -> StreamEntry:
    (entry,) = await queue.read(GENERATE_STREAM, WORKER_GROUP, consumer, block_ms=100)
    return entry


async def test_lease_heartbeat_takeover_and_fencing(redis_url: str) -> None:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    job = make_job()
    await queue.create_job(job)
    await queue.enqueue_job(job)
    entry = await take(queue, "w1")
    assert (await queue.start_job(job.id, "w1")).ok
    assert await queue.heartbeat(entry, job.id, "w1") == "ok"
    # a live lease is never taken over, even when its entry is handed to someone else
    (claimed,) = await queue.claim_stale(GENERATE_STREAM, WORKER_GROUP, "w2", min_idle_ms=0)
    refused = await queue.start_job(job.id, "w2", takeover=True, lease=60)
    assert refused.status == "refused"
    assert await queue.heartbeat(entry, job.id, "w1") == "lost"  # w1 learns the entry moved
    # an expired lease is: the heartbeat is older than the lease
    taken = await queue.start_job(job.id, "w2", takeover=True, lease=0)
    assert taken.ok
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.worker == "w2" and stored.attempts == 2
    # the old worker can no longer record a result; the new one can, and acks with it
    assert not await queue.finish_job(claimed, job, "w1", State.SUCCEEDED)
    assert await queue.finish_job(claimed, job, "w2", State.SUCCEEDED, finished_at=1)
    pending = await queue.redis.xpending(GENERATE_STREAM, WORKER_GROUP)
    assert pending["pending"] == 0
    await queue.aclose()


async def test_hand_back_requeues_without_spending_an_attempt(redis_url: str) -> None:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    job = make_job()
    await queue.create_job(job)
    await queue.enqueue_job(job)
    entry = await take(queue, "w1")
    await queue.start_job(job.id, "w1")
    assert await queue.hand_back(entry, job, "w2") is None  # not w2's job
    assert await queue.hand_back(entry, job, "w1")
    stored = await queue.get_job(job.id)
    assert stored is not None and (stored.state, stored.attempts) == (State.QUEUED, 0)
    fresh = await take(queue, "w2")  # available at once, not after a lease
    assert fresh.fields["job"] == job.id and fresh.id != entry.id
    assert (await queue.start_job(job.id, "w2")).ok
    await queue.aclose()


async def test_attempts_run_out_into_dead_letters_and_back(redis_url: str) -> None:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    job = make_job()
    await queue.create_job(job)
    await queue.enqueue_job(job)
    entry = await take(queue, "w1")
    for worker in ("w1", "w2", "w3"):
        assert (await queue.start_job(job.id, worker, max_attempts=3, takeover=True)).ok
    exhausted = await queue.start_job(job.id, "w4", max_attempts=3, takeover=True)
    assert exhausted.status == "exhausted"
    assert await queue.dead_letter(entry, job, "kept crashing")
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.state is State.DEAD and stored.error == "kept crashing"
    (dead,) = await queue.dead_letters()
    assert dead.fields["job"] == job.id
    assert await queue.redis.xlen(DEAD_STREAM) == 1
    requeued = await queue.requeue_dead(dead.id)
    assert requeued is not None and requeued.state is State.QUEUED
    assert await queue.dead_letters() == []
    again = await take(queue, "w5")
    assert (await queue.start_job(job.id, "w5", max_attempts=3)).ok and again.fields[
        "job"
    ] == job.id
    await queue.aclose()


async def test_stats_markers_and_memos_are_plain_values(redis_url: str) -> None:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    stats = await queue.stream_stats(GENERATE_STREAM, WORKER_GROUP)
    assert (stats.length, stats.pending, stats.lag) == (0, 0, 0)
    assert await queue.oldest_waiting_age(GENERATE_STREAM, WORKER_GROUP) == 0.0
    await queue.enqueue_job(make_job())
    await take(queue, "w1")
    await queue.enqueue_job(make_job("j2"))
    stats = await queue.stream_stats(GENERATE_STREAM, WORKER_GROUP)
    assert (stats.length, stats.pending, stats.lag) == (2, 1, 1)
    assert 0 <= await queue.oldest_waiting_age(GENERATE_STREAM, WORKER_GROUP) < 60
    assert (await queue.stream_stats("no-such-stream", WORKER_GROUP)).pending == 0
    assert await queue.dead_letter_count() == 0
    assert await queue.recall("report") is None
    await queue.remember("report", "{}", ttl=60)
    assert await queue.recall("report") == "{}"
    await queue.aclose()


async def test_scripts_are_files_registered_once_per_client(redis_url: str) -> None:
    assert "local function end_job" in source("finish_job")
    assert "-- include:" not in source("finish_job")
    first, second = Queue.from_url(redis_url), Queue.from_url(redis_url)
    assert script(first.redis, "finish_job") is script(first.redis, "finish_job")
    assert script(first.redis, "finish_job") is not script(second.redis, "finish_job")
    await first.aclose()
    await second.aclose()
