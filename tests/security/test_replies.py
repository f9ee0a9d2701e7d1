"""Finding 6, reply flood: a stranger's command comments cannot make the bot write without
bound, nor crowd out what it promised (a job's check-run completion and result comment),
and a final result GitHub refused survives the worker's death and is posted exactly once.

Real parts throughout: the server and dispatcher in this loop, `instruct-lab-bot worker`
processes where killing them is the point, real Redis, the spec-validating GitHub emulator.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import replace

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.services.app_keys import METRICS
from testkit.github_emulator import Call
from testkit.harness import RunningBot, run_bot
from tests.fixtures.bot import MENTION, WorkerProcess
from tests.fixtures.world import World
from tests.test_commands_e2e import OWNER, PR, REPO, comment_as, jobs, settled
from tests.test_reliability import fast, the_job, until

StartWorker = Callable[..., WorkerProcess]
OUTSIDER = "stranger-sam"  # no role in the repository: every restricted command is denied
FLOOD = 50
PER_USER = 20  # ILAB_BOT_REPLY_LIMIT_PER_USER's documented default
COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"


def silenced(bot: RunningBot, **labels: str) -> float:
    """The `replies_silenced` counter, summed over the series matching `labels`."""
    total = 0.0
    for family in bot.app[METRICS].registry.collect():
        for sample in family.samples:
            if sample.name == "instruct_lab_bot_replies_silenced_total" and (
                labels.items() <= sample.labels.items()
            ):
                total += sample.value
    return total


async def flood(world: World, bot: RunningBot, login: str = OUTSIDER, count: int = FLOOD) -> None:
    """`count` comments, each asking for a command the person may not run or that is unknown."""
    for n in range(count):
        body = f"{MENTION} generate" if n % 2 else f"{MENTION} frobnicate"
        await comment_as(world, bot, login, body)


def flood_replies(world: World) -> list[str]:
    return [c["body"] for c in world.bot_comments() if not c["body"].startswith("### ")]


async def test_an_outsiders_flood_gets_replies_up_to_the_limit_then_silence(world: World) -> None:
    async with run_bot(world.settings, workers=0) as bot:
        await flood(world, bot)
        await settled(world, timeout=120)
        assert len(flood_replies(world)) == PER_USER
        assert silenced(bot, limit="user") == FLOOD - PER_USER
        assert silenced(bot, reason="denied") + silenced(bot, reason="unknown") == FLOOD - PER_USER
    assert await jobs(world) == []


async def test_the_pull_request_limit_holds_across_people(world: World) -> None:
    world.settings = replace(world.settings, reply_limit_per_user=3, reply_limit_per_pr=5)
    async with run_bot(world.settings, workers=0) as bot:
        await flood(world, bot, "stranger-sam", 4)
        await flood(world, bot, "stranger-sue", 4)
        await settled(world)
        assert len(flood_replies(world)) == 5
        assert silenced(bot, limit="user") == 1
        assert silenced(bot, limit="pull_request") == 2


async def test_a_jobs_final_result_goes_out_during_a_flood(world: World) -> None:
    # A tight budget (30 writes a minute) and short waits for a write slot: before replies had
    # their own share, the flood spent it and the job's writes gave up.
    world.settings = replace(world.settings, github_write_limit=30, github_retry_deadline=5.0)
    async with run_bot(world.settings) as bot:
        await flood(world, bot)
        assert (await world.comment(bot))[0] == 202  # a maintainer's `generate`
        comment = await world.result_comment(timeout=60)
        await settled(world, timeout=120)
        assert silenced(bot, limit="budget") > 0
    assert "succeeded" in comment["body"]
    assert world.check_run()["conclusion"] == "success"
    assert len(flood_replies(world)) <= 30 // 4  # the replies' share of the budget
    job = await the_job(world.settings)
    assert job.state is State.SUCCEEDED and job.result_comment_id == comment["id"]


def comment_posts(world: World) -> list[Call]:
    return [
        c for c in world.gh.calls_matching("POST", COMMENTS) if c.path.endswith(f"/{PR}/comments")
    ]


async def finished_job(world: World) -> Job:
    """The PR's one job, once it exists and reached an end state."""
    queue = Queue.from_url(world.settings.redis_url)
    try:
        async with asyncio.timeout(60):
            while not await queue.pr_job_ids(RepoRef(OWNER, REPO).pull(PR)):
                await asyncio.sleep(0.05)
    finally:
        await queue.aclose()
    return await the_job(world.settings)


async def pending_results(world: World) -> int:
    queue = Queue.from_url(world.settings.redis_url)
    try:
        return await queue.pending_results()
    finally:
        await queue.aclose()


async def test_a_result_github_refused_is_posted_once_after_the_worker_dies(
    world: World, worker_processes: StartWorker
) -> None:
    settings = fast(world)
    # GitHub's secondary rate limit first, then a GitHub that keeps failing.
    world.gh.inject(
        "POST",
        COMMENTS,
        status=403,
        headers={"retry-after": "1"},
        body={"message": "You have exceeded a secondary rate limit."},
    )
    failing = world.gh.inject("POST", COMMENTS, status=502, times=None)
    async with run_bot(settings, workers=0) as bot:
        first = worker_processes(settings)
        await first.registered(settings.redis_url)
        assert (await world.comment(bot))[0] == 202
        job = await finished_job(world)  # stored as finished while GitHub refuses the result
        await until(lambda: len(comment_posts(world)) >= 2, what="the result refused")
        first.signal(signal.SIGKILL)
        await first.wait()
        assert world.result_comments() == []  # kept in the outbox only
        failing.times = 0  # GitHub is back
        second = worker_processes(settings)
        # Both waits span the second worker's start: under load that alone took over 30 s.
        comment = await world.result_comment(timeout=None)
        await until(
            lambda: any(e.get("event") == "job.result_posted" for e in second.events()),
            timeout=None,
        )
    assert job.state is State.SUCCEEDED and "succeeded" in comment["body"]
    assert world.check_run()["conclusion"] == "success"
    assert len(world.result_comments()) == 1
    assert len(world.record.entries()) == 1  # ilab ran once: the job was not run again
    assert await pending_results(world) == 0


async def test_a_result_posted_just_before_the_worker_died_is_not_posted_again(
    world: World, worker_processes: StartWorker
) -> None:
    settings = fast(world)
    world.gh.inject("POST", COMMENTS, delay=1.0)  # the worker dies while GitHub takes it
    async with run_bot(settings, workers=0) as bot:
        first = worker_processes(settings)
        await first.registered(settings.redis_url)
        assert (await world.comment(bot))[0] == 202
        await until(lambda: len(comment_posts(world)) == 1, what="the result in flight")
        first.signal(signal.SIGKILL)
        await first.wait()
        (posted,) = comment_posts(world)
        await until(lambda: posted.status is not None, what="GitHub took the comment")
        assert len(world.result_comments()) == 1  # on the PR; never settled in the outbox
        second = worker_processes(settings)
        job = await finished_job(world)
        assert len(world.record.entries()) == 1  # the job was stored before the post: no re-run
        await until(  # spans the second worker's start (over 30 s under load): no guess
            lambda: any(e.get("event") == "job.result_found_posted" for e in second.events()),
            timeout=None,
        )
        assert await pending_results(world) == 0
    assert len(world.result_comments()) == 1
    assert len(comment_posts(world)) == 1
    assert world.check_run()["conclusion"] == "success"
    assert job.state is State.SUCCEEDED and job.attempts == 1
