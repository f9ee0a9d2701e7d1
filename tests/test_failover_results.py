"""Results across a Redis failover or a stalled poster: the two cases the chaos runs found
(docs/reliability.md): a takeover of a job whose end state was lost, and two posters racing
to comment the same result. Real Redis, real worker code, the spec-validating emulator."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from instruct_lab_bot.adapters.redis.keys import OUTBOX_KEY, job_key, jobs_stream
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import StreamEntry
from instruct_lab_bot.core.final_result import final_result
from instruct_lab_bot.core.jobs import Job, State, new_job_id
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.services.worker.app import open_worker
from testkit.harness import run_bot
from tests.fixtures.world import MAINTAINER, World
from tests.test_reliability import the_job

JOBS_STREAM = jobs_stream("generate")
COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"


def taken_over_job(world: World) -> Job:
    """A job on the world's PR that runs for the second time (its first worker died)."""
    return Job(
        id=new_job_id(),
        command="generate",
        installation_id=world.gh.installation_id,
        owner="instructlab",
        repo="taxonomy",
        pr_number=7,
        requester=MAINTAINER,
        head_sha=world.remote.head_sha,
        attempts=2,
    )


async def test_racing_posters_leave_one_result_comment(world: World) -> None:
    job = taken_over_job(world)
    result = JobResult(state=State.SUCCEEDED, duration=1.0)
    comment = final_result(job, result).comment
    async with open_worker(world.settings) as worker:
        await worker.outbox.record(job, result)
        held = world.gh.hold_one("POST", COMMENTS)
        posting = asyncio.create_task(worker.outbox.deliver(job.id))
        await held.arrived.wait()  # our post is in flight, after our look for an earlier one
        racer = world.gh.add_bot_comment("instructlab", "taxonomy", 7, comment)
        assert held.gate is not None
        held.gate.set()
        await posting
    kept = [c["id"] for c in world.bot_comments() if c["body"] == comment]
    assert kept == [racer["id"]]  # the older copy stays, ours was deleted
    assert world.gh.take_violations() == []


async def test_a_first_post_that_lost_its_claim_meanwhile_keeps_the_older_copy(
    world: World,
) -> None:
    """The race left before (docs/reliability.md): a first poster, which does not look for
    an earlier comment, whose POST GitHub takes only after a second poster posted and made
    its last list. The first checks its claim after posting, finds it lost, and looks."""
    job = taken_over_job(world).evolve(attempts=1)
    result = JobResult(state=State.SUCCEEDED, duration=1.0)
    comment = final_result(job, result).comment
    async with open_worker(world.settings) as worker:
        await worker.outbox.record(job, result)
        held = world.gh.hold_one("POST", COMMENTS)
        posting = asyncio.create_task(worker.outbox.deliver(job.id))
        await held.arrived.wait()  # the first poster's comment is in flight
        queue = worker.deps.queue
        await queue.redis.zadd(OUTBOX_KEY, {job.id: 0}, xx=True)  # its lease runs out
        (claim,) = await queue.claim_results("second-poster", 60.0, job_id=job.id)
        assert claim.attempts == 2  # the second poster looks, finds nothing yet, posts
        racer = world.gh.add_bot_comment("instructlab", "taxonomy", 7, comment)
        assert held.gate is not None
        held.gate.set()
        await posting
    kept = [c["id"] for c in world.bot_comments() if c["body"] == comment]
    assert kept == [racer["id"]]  # the older copy stays, the late one was deleted
    assert world.gh.take_violations() == []


async def test_a_lone_first_post_is_not_checked_again(world: World) -> None:
    """The common case costs no extra call: a first run's first post only comments."""
    job = taken_over_job(world).evolve(attempts=1)
    result = JobResult(state=State.SUCCEEDED, duration=1.0)
    async with open_worker(world.settings) as worker:
        await worker.outbox.record(job, result)
        await worker.outbox.deliver(job.id)
    calls = [(c.method, c.route) for c in world.gh.calls]
    assert calls.count(("POST", COMMENTS)) == 1
    assert ("GET", COMMENTS) not in calls


async def test_takeover_after_a_lost_end_state_ends_the_job_without_running_it(
    world: World,
) -> None:
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        await world.result_comment()
    job = await the_job(world.settings)
    runs = len(world.record.entries())
    # The failover: the new primary has the result claim (it was confirmed by a replica) but
    # not the end state nor the acknowledgement written after it.
    queue = Queue.from_url(world.settings.redis_url)
    lost: dict[str | bytes, str] = {
        "state": "running",
        "worker": "worker-lost-in-failover",
        "heartbeat_at": "1.0",
    }
    await cast(Any, queue.redis).hset(job_key(job.id), mapping=lost)
    entry = StreamEntry(JOBS_STREAM, job.stream_id, {"job": job.id})
    updates = len([c for c in world.gh.calls if c.method == "PATCH" and "check-runs" in c.path])
    async with open_worker(world.settings) as worker:
        await worker.process(entry, takeover=True)
    ended = await queue.get_job(job.id)
    await queue.aclose()
    assert ended is not None and ended.state is State.SUCCEEDED
    assert len(world.record.entries()) == runs  # not run a second time
    patched = [c for c in world.gh.calls if c.method == "PATCH" and "check-runs" in c.path]
    assert len(patched) == updates  # the check run was not reopened
    assert world.check_run()["status"] == "completed"
    assert len(world.result_comments()) == 1


async def test_a_requeued_dead_job_posts_its_new_result(world: World) -> None:
    """`dlq requeue` starts a new round: its result is recorded and posted again (the first
    round's claim would otherwise swallow it), as a comment of its own."""
    async with run_bot(world.settings, workers=0) as bot:
        assert (await world.comment(bot))[0] == 202
        queue = Queue.from_url(world.settings.redis_url)
        # XREAD from 0 blocks until the dispatcher queued the job
        read = await cast(Any, queue.redis).xread({JOBS_STREAM: "0"}, block=60_000)
        ((_stream, ((_id, fields),)),) = read
        job_id = fields["job"]
        spent = str(world.settings.max_deliveries)
        await cast(Any, queue.redis).hset(job_key(job_id), "attempts", spent)
        async with open_worker(world.settings) as worker:  # the attempts are used up
            await queue.ensure_groups(events=False)
            (entry,) = await queue.read(JOBS_STREAM, "workers", worker.name, count=1)
            await worker.process(entry)
        assert "stopped after" in world.result_comments()[0]["body"]
        (dead,) = await queue.dead_letters()
        requeued = await queue.requeue_dead(dead.id)
        assert requeued is not None and requeued.requeued == 1
        async with open_worker(world.settings) as worker:
            (entry,) = await queue.read(JOBS_STREAM, "workers", worker.name, count=1)
            await worker.process(entry)
        job = await queue.get_job(job_id)
        await queue.aclose()
    assert job is not None and job.state is State.SUCCEEDED
    first, second = world.result_comments()
    assert "stopped after" in first["body"] and "stopped after" not in second["body"]
    assert world.check_run()["conclusion"] == "success"
