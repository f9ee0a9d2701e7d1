"""GitHub rate limits and retries (pure decisions) and the write budget shared in Redis,
exercised by several `GitHubApp`s (one per simulated process) against the emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from instruct_lab_bot.adapters.github import GitHubApp, GitHubAppConfig
from instruct_lab_bot.adapters.github.rate_limits import (
    SECONDARY_LIMIT_WAIT,
    Outcome,
    rate_limit_wait,
    retry_delay,
)
from instruct_lab_bot.adapters.redis.write_budget import WriteBudget
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.retry import RetryPolicy
from instruct_lab_bot.core.write_gate import WriteClass
from testkit.github_emulator import AppKey, Call, GitHubEmulator

POLICY = RetryPolicy(deadline=30, base_delay=0.01, max_delay=0.05)
SHA = "a" * 40

# -- retry decisions ----------------------------------------------------------------------

REPO = RepoRef("o", "r")
PULL = REPO.pull(1)


def test_server_errors_and_lost_connections_back_off_with_a_cap() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=4)
    for status in (500, 502, 503, 504, 408):
        advice = retry_delay(Outcome(status, {}), 1, policy)
        assert advice is not None and 0.5 <= advice.delay <= 1 and not advice.rate_limited
    dropped = Outcome(None, {}, aiohttp.ServerDisconnectedError())
    assert retry_delay(dropped, 2, policy) is not None
    assert retry_delay(Outcome(None, {}, TimeoutError()), 1, policy) is not None
    assert all(2 <= policy.backoff(n) <= 4 for n in range(3, 12))


def test_refusals_are_final() -> None:
    for status in (400, 401, 404, 409, 422):
        assert retry_delay(Outcome(status, {}), 1, POLICY) is None
    assert retry_delay(Outcome(403, {}, Exception("Resource not accessible")), 1, POLICY) is None
    assert retry_delay(Outcome(None, {}, ValueError("bad JSON")), 1, POLICY) is None


def test_rate_limits_wait_what_github_says() -> None:
    assert rate_limit_wait(403, {"Retry-After": "7"}) == 7
    assert rate_limit_wait(429, {"retry-after": "3", "x-ratelimit-remaining": "0"}) == 3
    reset = time.time() + 42
    wait = rate_limit_wait(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    assert wait is not None and 41 <= wait <= 42
    assert rate_limit_wait(429, {}) == SECONDARY_LIMIT_WAIT
    assert rate_limit_wait(403, {}, "You have exceeded a secondary rate limit") == 60
    assert rate_limit_wait(403, {"x-ratelimit-remaining": "12"}) is None
    advice = retry_delay(Outcome(403, {"retry-after": "2"}), 1, POLICY)
    assert advice is not None and advice.rate_limited and 2 <= advice.delay <= 2.25


# -- the shared budget ----------------------------------------------------------------


@pytest.fixture
async def redis_clients(redis_url: str) -> AsyncIterator[Callable[[], aioredis.Redis]]:
    """`new()`: one more Redis client (one per simulated process), all closed afterwards."""
    clients: list[aioredis.Redis] = []

    def new() -> aioredis.Redis:
        client: aioredis.Redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        clients.append(client)
        return client

    yield new
    for client in clients:
        await client.aclose()


async def test_budget_grants_up_to_the_limit_and_keeps_a_reserve(
    redis_clients: Callable[[], aioredis.Redis],
) -> None:
    budget = WriteBudget(redis_clients(), limit=5, window=2.0, reserve=0.2)
    assert budget.droppable_limit == 4
    grants = [await budget.try_take(7, write_class=WriteClass.PROGRESS) for _ in range(5)]
    assert grants[:4] == [0, 0, 0, 0] and 0 < grants[4] <= 2.0  # progress leaves the reserve
    assert await budget.try_take(7, write_class=WriteClass.FINAL) == 0  # must-deliver may use it
    wait = await budget.try_take(7, write_class=WriteClass.FINAL)
    assert 0 < wait <= 2.0
    assert await budget.try_take(8, write_class=WriteClass.FINAL) == 0  # per installation
    other = WriteBudget(redis_clients(), limit=5, window=2.0)
    assert await other.try_take(7, write_class=WriteClass.FINAL) > 0  # shared by every process


async def test_replies_have_a_share_of_their_own_and_leave_the_reserve(
    redis_clients: Callable[[], aioredis.Redis],
) -> None:
    budget = WriteBudget(redis_clients(), limit=8, window=2.0, reserve=0.25, reply_share=0.25)
    assert (budget.droppable_limit, budget.reply_limit) == (6, 2)
    replies = [await budget.try_take(7, write_class=WriteClass.REPLY) for _ in range(3)]
    assert replies[:2] == [0, 0] and replies[2] > 0  # their own share is spent
    progress = [await budget.try_take(7, write_class=WriteClass.PROGRESS) for _ in range(5)]
    assert progress[:4] == [0, 0, 0, 0] and progress[4] > 0  # replies count in the total
    finals = [await budget.try_take(7, write_class=WriteClass.FINAL) for _ in range(3)]
    assert finals == [0, 0, finals[2]] and finals[2] > 0  # the reserve was all theirs


async def test_a_pause_holds_every_writer(redis_clients: Callable[[], aioredis.Redis]) -> None:
    first = WriteBudget(redis_clients(), limit=5, window=1.0)
    second = WriteBudget(redis_clients(), limit=5, window=1.0)
    await first.pause(3, 5.0)
    await first.pause(3, 1.0)  # a shorter pause never shortens a longer one
    wait = await second.try_take(3, write_class=WriteClass.FINAL)
    assert 4 < wait <= 5
    assert await second.try_take(4, write_class=WriteClass.FINAL) == 0


# -- GitHubApps sharing one budget --------------------------------------------------------


@pytest.fixture
async def processes(
    github: GitHubEmulator, github_app_key: AppKey, redis_clients: Callable[[], aioredis.Redis]
) -> AsyncIterator[Callable[..., GitHubApp]]:
    """`process(budget=..., **kwargs)`: a GitHubApp with its own HTTP session and Redis
    client, as a separate bot process would have."""
    github.add_pull("o", "r", 1, head_sha=SHA, head_ref="topic")
    sessions: list[aiohttp.ClientSession] = []

    def process(*, limit: int | None = None, window: float = 1.0, **kwargs: Any) -> GitHubApp:
        session = aiohttp.ClientSession()
        sessions.append(session)
        budget = None
        if limit is not None:
            budget = WriteBudget(redis_clients(), limit=limit, window=window)
        config = GitHubAppConfig(
            app_id=str(github_app_key.app_id),
            private_key=github_app_key.private_key_pem,
            api_url=github.url,
            timeout=5,
            retry=POLICY,
        )
        return GitHubApp(session, config, budget=budget, **kwargs)

    yield process
    for session in sessions:
        await session.close()


def writes(github: GitHubEmulator, since: float = 0.0) -> list[Call]:
    """Content-creating requests made as an installation (token requests are the App's)."""
    return [
        c
        for c in github.calls
        if c.method in ("POST", "PATCH", "PUT", "DELETE")
        and c.path.startswith("/repos/")
        and c.timestamp >= since
    ]


def budget_bound(limit: int, window: float, started: float) -> float:
    """The most writes a sliding window of `limit` per `window` seconds can grant between
    `started` and now. Measured around the whole run (not from the emulator's arrival times,
    which scheduling delays on a busy machine can bunch up), so it can only be generous."""
    return limit * ((time.time() - started) / window + 1)


async def test_two_processes_never_exceed_the_shared_budget(
    github: GitHubEmulator, processes: Callable[..., GitHubApp]
) -> None:
    setup = processes().installation(github.installation_id)
    runs = [
        await setup.create_check_run(REPO, {"name": f"r{n}", "head_sha": SHA}) for n in range(2)
    ]
    started = time.time()
    apps = [processes(limit=4, window=1.0) for _ in range(2)]
    installs = [a.installation(github.installation_id) for a in apps]

    async def comment(n: int) -> None:
        await installs[n % 2].create_comment(PULL, f"result {n}")

    async def progress(n: int) -> None:
        payload = {"status": "in_progress", "output": {"title": "t", "summary": f"{n}"}}
        await installs[n % 2].update_check_run(REPO, runs[n % 2], payload, droppable=True)

    await asyncio.gather(*(comment(n) for n in range(10)), *(progress(n) for n in range(10)))
    bound = budget_bound(4, 1.0, started)
    sent = writes(github, started)
    assert sorted(c["body"] for c in github.comments("o", "r", 1)) == sorted(
        f"result {n}" for n in range(10)
    )  # every must-deliver write went out, waiting for room
    progress_sent = [c for c in sent if c.method == "PATCH"]
    assert len(progress_sent) < 10  # progress was skipped under pressure
    assert len(sent) <= bound  # unshared, the two processes would send 20 at once


async def test_fifty_jobs_reporting_progress_stay_within_the_budget(
    github: GitHubEmulator, processes: Callable[..., GitHubApp]
) -> None:
    setup = processes().installation(github.installation_id)
    runs = list(
        await asyncio.gather(
            *(setup.create_check_run(REPO, {"name": f"job{n}", "head_sha": SHA}) for n in range(50))
        )
    )
    started = time.time()
    limit, window = 20, 1.0
    apps = [processes(limit=limit, window=window) for _ in range(5)]  # 5 processes, 10 jobs each

    async def job(n: int) -> None:
        gh = apps[n % len(apps)].installation(github.installation_id)
        for tick in range(10):
            output = {"title": "Generating", "summary": f"{tick * 10}%"}
            await gh.update_check_run(
                REPO, runs[n], {"status": "in_progress", "output": output}, droppable=True
            )
            await asyncio.sleep(0.05)
        done = {"conclusion": "success", "output": {"title": "Done", "summary": "ok"}}
        await gh.update_check_run(REPO, runs[n], done)

    async with asyncio.timeout(30):
        await asyncio.gather(*(job(n) for n in range(50)))
    bound = budget_bound(limit, window, started)
    assert all(github.check_run(r)["conclusion"] == "success" for r in runs)
    sent = writes(github, started)
    assert len(sent) < 50 * 11  # progress was dropped, completions were not
    assert len(sent) <= bound  # without the shared budget: 550 writes in about a second
