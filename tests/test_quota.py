"""GitHub's hourly quota per installation (issue 18, the burst drain): when GitHub says it is
spent, no command is dropped. The installation is marked spent until GitHub's reset, for every
process; meanwhile its events stay pending (no attempt counted) and no call asks GitHub; after
the reset each command gets exactly one job or one answer."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from instruct_lab_bot.adapters.github import GitHubApp, QuotaSpent
from instruct_lab_bot.adapters.redis.keys import DISPATCH_GROUP, EVENTS_STREAM
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.write_budget import WriteBudget
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.services.app_keys import METRICS
from instruct_lab_bot.services.dispatcher.parked import Parked
from testkit.github_emulator import Call, GitHubEmulator
from testkit.harness import run_bot
from tests import test_duplicates, test_github_client
from tests.fixtures.bot import MENTION
from tests.fixtures.world import World
from tests.test_github_client import MakeApp

PULL = RepoRef("instructlab", "taxonomy").pull(7)
PULL_ROUTE = "/repos/{owner}/{repo}/pulls/{pull_number}"
RESET_IN = 4  # seconds until GitHub gives the installation its hour back
NS = "instruct_lab_bot"


queue = test_duplicates.queue  # a Redis queue of the world's bot
handled = test_duplicates.handled  # until every stored event is acknowledged
session = test_github_client.session
make_app = test_github_client.make_app  # a GitHubApp on the emulator with fast retries


def refused(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.status in (403, 429)]


async def test_commands_refused_by_the_spent_quota_are_each_answered_once_after_its_reset(
    world: World, queue: Queue
) -> None:
    # A request deadline shorter than the reset, so that no call simply waits it out in place
    # (as with a reset an hour away). The lease is the default minute: the events are taken
    # back at the reset, not a lease later (`handled` would time out first).
    settings = dataclasses.replace(world.settings, github_retry_deadline=1.0)
    bodies = [f"{MENTION} generate", f"{MENTION} precheck", f"{MENTION} help"]
    async with run_bot(settings, workers=0) as bot:
        metrics = bot.app[METRICS].registry
        # The installation token is fetched, then the quota runs out during the commands.
        world.gh.set_rate_limit(remaining=3, reset_in=RESET_IN)
        reset = world.gh.rate_reset
        for body in bodies:
            assert (await world.comment(bot, body))[0] == 202
        await handled(queue)
        calls = list(world.gh.calls)
        held = metrics.get_sample_value(f"{NS}_dispatcher_events_held_for_quota_total")
        waiting = metrics.get_sample_value(f"{NS}_github_quota_waiting")

    jobs = await queue.get_jobs(await queue.pr_job_ids(PULL))
    assert sorted(j.command for j in jobs) == ["generate", "precheck"]  # one job each
    help_replies = [c for c in world.bot_comments() if "restricted" in c["body"]]
    assert len(help_replies) == 1  # and one answer to `help`

    no = refused(calls)
    assert no, "the quota never ran out: the test did not test it"
    # No hammering: a call GitHub refused for the quota was not asked again before the reset
    # (only the calls already on their way when the first refusal came back were refused).
    again = [path for path, n in Counter(c.path for c in no).items() if n > 1]
    assert not again, again
    assert all(c.timestamp < reset for c in no)
    # Everything that needed GitHub waited for the reset, then went through.
    answered_after = [c for c in calls if c.status is not None and c.status < 300]
    assert any(c.timestamp >= reset for c in answered_after)
    assert held and held >= 1  # events left pending for the quota were counted
    assert waiting == 0  # and the wait ended


def test_the_emulator_gives_the_hour_back_after_the_reset(world: World) -> None:
    gh = world.gh
    gh.set_rate_limit(remaining=0, reset_in=-1)
    gh._spend_rate_limit(gh.installation_id)  # refills first, as GitHub does past the reset
    assert gh.rate_used == 1
    assert gh.rate_reset > time.time() + 3000


async def test_a_result_finished_while_the_quota_is_spent_is_posted_once_after_its_reset(
    world: World, queue: Queue
) -> None:
    settings = dataclasses.replace(world.settings, github_retry_deadline=1.0)
    async with run_bot(settings, workers=1) as bot:
        assert (await world.comment(bot, f"{MENTION} generate"))[0] == 202
        async with asyncio.timeout(60):
            while not [
                j
                for j in await queue.get_jobs(await queue.pr_job_ids(PULL))
                if j.state is State.RUNNING
            ]:
                await asyncio.sleep(0.05)
        # while the job runs; the reset comes after its end (the stand-in runs 2.5 s)
        world.gh.set_rate_limit(remaining=0, reset_in=2 * RESET_IN)
        reset = world.gh.rate_reset
        result = await world.result_comment(timeout=90)
        calls = list(world.gh.calls)
    assert result["created_at"]
    assert world.check_run()["status"] == "completed"
    (job,) = await queue.get_jobs(await queue.pr_job_ids(PULL))
    assert job.state is State.SUCCEEDED
    no = refused(calls)
    assert no, "the quota never ran out: the test did not test it"
    again = [path for path, n in Counter(c.path for c in no).items() if n > 1]
    assert not again, again  # the outbox did not ask again before the reset
    posted = [c for c in calls if c.method == "POST" and c.status == 201 and "/comments" in c.path]
    assert posted and all(c.timestamp >= reset for c in posted[-1:])


@pytest.fixture
async def processes(
    github: GitHubEmulator, make_app: MakeApp, redis_url: str
) -> AsyncIterator[tuple[GitHubApp, GitHubApp, WriteBudget]]:
    """Two bot processes' GitHub clients (as two replicas), each with its own Redis client."""
    github.add_pull("o", "r", 1, head_sha="a" * 40, head_ref="topic")
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    budgets = [WriteBudget(client) for client in clients]
    yield make_app(budget=budgets[0]), make_app(budget=budgets[1]), budgets[1]
    for client in clients:
        await client.aclose()


async def test_a_spent_quota_holds_every_process_and_only_that_installation(
    processes: tuple[GitHubApp, GitHubApp, WriteBudget], github: GitHubEmulator
) -> None:
    first, second, budget = processes
    repo = RepoRef("o", "r")
    await first.installation(github.installation_id).get_pull(repo.pull(1))  # token in hand
    github.set_rate_limit(remaining=0, reset_in=3600)
    with pytest.raises(QuotaSpent) as spent:  # the reset is past the call's deadline
        await first.installation(github.installation_id).get_pull(repo.pull(1))
    assert spent.value.transient and spent.value.until >= github.rate_reset
    asked = len(github.calls)
    gh = second.installation(github.installation_id)
    with pytest.raises(QuotaSpent):  # another process: told by Redis, GitHub is not asked
        await gh.get_pull(repo.pull(1))
    with pytest.raises(QuotaSpent):  # nor for a write
        await gh.create_comment(repo.pull(1), "hello")
    with pytest.raises(QuotaSpent):  # a file unread for the quota is not an "error" file
        await gh.file_at(repo, "README.md", "a" * 40)
    assert len(github.calls) == asked
    assert first.quota.waiting == second.quota.waiting == 1  # the gauge each process shows
    assert await budget.quota_spent_until(github.installation_id) >= github.rate_reset
    assert await budget.quota_spent_until(github.installation_id + 1) == 0.0


async def test_a_reset_within_the_deadline_is_waited_for_and_asked_once(
    processes: tuple[GitHubApp, GitHubApp, WriteBudget], github: GitHubEmulator
) -> None:
    first, second, _ = processes
    repo = RepoRef("o", "r")
    await first.installation(github.installation_id).get_pull(repo.pull(1))
    github.set_rate_limit(remaining=0, reset_in=2)
    reset = github.rate_reset
    await asyncio.gather(
        first.installation(github.installation_id).get_pull(repo.pull(1)),
        second.installation(github.installation_id).get_pull(repo.pull(1)),
    )
    calls = github.calls_matching("GET", PULL_ROUTE)[1:]
    # the one refused, or two if both were on their way together; then each once more
    refused_calls = refused(calls)
    assert 1 <= len(refused_calls) <= 2
    answered = [c for c in calls if c.status == 200]
    assert len(answered) == 2 and all(c.timestamp >= reset for c in answered)


async def test_a_parked_event_is_taken_back_after_the_reset_unless_someone_else_took_it(
    redis_url: str,
) -> None:
    queue = Queue.from_url(redis_url)
    try:
        await queue.ensure_groups()
        ids = [str(await queue.add_event(f"d{n}", {"type": "x", "intent": "{}"})) for n in (1, 2)]
        read = await queue.read(EVENTS_STREAM, DISPATCH_GROUP, "a", count=2, block_ms=100)
        assert [e.id for e in read] == ids
        parked = Parked(queue, "a")
        parked.park(ids[0], until=time.time() + 3600)  # not due yet
        # due; set aside (as if) ten seconds ago, and taken by another dispatcher since
        parked.park(ids[1], until=time.time(), now=time.time() - 10)
        assert await queue.claim_untouched(EVENTS_STREAM, DISPATCH_GROUP, "b", ids[1], 0)
        assert await parked.due(10) == []  # so "a" leaves it to "b"; the other is not due
        parked.park(ids[0], until=time.time())
        (back,) = await parked.due(10)  # untouched since it was set aside: taken back
        assert back.id == ids[0] and len(parked) == 0
    finally:
        await queue.aclose()
