"""Missed deliveries: failed webhook deliveries in the emulator are redelivered exactly once,
however many reconcilers run and however often (issue 4, test 8)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from instruct_lab_bot.adapters.github.client import GitHubApp
from instruct_lab_bot.adapters.redis.keys import RECONCILER_LOCK, delivery_key
from instruct_lab_bot.adapters.redis.redelivery import RedeliveryLedger
from instruct_lab_bot.core.retry import RetryPolicy
from instruct_lab_bot.services.reconciler import Reconciler, pick_redeliveries
from testkit.github_emulator import AppKey, GitHubEmulator

DELIVERIES = "/app/hook/deliveries"
ATTEMPTS = "/app/hook/deliveries/{delivery_id}/attempts"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# -- choosing what to redeliver (pure) ----------------------------------------------------


def delivery(
    ident: int, guid: str, status_code: int, *, ago: timedelta, redelivery: bool = False
) -> dict[str, Any]:
    at = (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": ident, "guid": guid, "status_code": status_code, "delivered_at": at,
            "redelivery": redelivery, "event": "issue_comment"}  # fmt: skip


def test_only_failed_events_never_retried_or_recovered_are_picked() -> None:
    minute, day = timedelta(minutes=1), timedelta(days=1)
    listed = [
        delivery(9, "later-ok", 200, ago=minute, redelivery=True),
        delivery(8, "failed-twice", 502, ago=minute, redelivery=True),
        delivery(7, "fresh", 503, ago=2 * minute),
        delivery(6, "unreachable", 0, ago=3 * minute),
        delivery(5, "fine", 201, ago=4 * minute),
        delivery(4, "later-ok", 500, ago=5 * minute),
        delivery(3, "failed-twice", 502, ago=6 * minute),
        delivery(2, "too-old", 502, ago=4 * day),
        delivery(1, "slow", 504, ago=day),
    ]
    since = (NOW - timedelta(days=3)).timestamp()
    picked = pick_redeliveries(listed, since)
    assert [(d["id"], d["guid"]) for d in picked] == [(1, "slow"), (6, "unreachable"), (7, "fresh")]


# -- against the emulator -----------------------------------------------------------------


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def make_reconciler(
    github: GitHubEmulator, github_app_key: AppKey, redis_url: str
) -> AsyncIterator[Callable[..., Reconciler]]:
    """`make_reconciler(**Reconciler kwargs)`: one replica, with its own session and Redis."""
    sessions: list[aiohttp.ClientSession] = []
    clients: list[aioredis.Redis] = []

    def make(**kwargs: Any) -> Reconciler:
        session = aiohttp.ClientSession()
        client: aioredis.Redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        sessions.append(session)
        clients.append(client)
        app = GitHubApp(
            session,
            app_id=str(github_app_key.app_id),
            private_key=github_app_key.private_key_pem,
            api_url=github.url,
            timeout=5,
            retry=RetryPolicy(deadline=5, max_attempts=3, base_delay=0.01, max_delay=0.05),
        )
        return Reconciler(app, RedeliveryLedger(client), **kwargs)

    yield make
    for session in sessions:
        await session.close()
    for client in clients:
        await client.aclose()


def add_mixed_deliveries(github: GitHubEmulator) -> list[int]:
    """Failed, succeeded and already-recovered deliveries; returns the ids to redeliver."""
    wanted = [
        github.add_hook_delivery("lost-1", event="issue_comment", status_code=502)["id"],
        github.add_hook_delivery("lost-2", event="issue_comment", status_code=503)["id"],
    ]
    github.add_hook_delivery("fine", event="issue_comment", status_code=200)
    github.add_hook_delivery("recovered", event="issue_comment", status_code=500)
    github.add_hook_delivery("recovered", event="issue_comment", redelivery=True)
    wanted.append(github.add_hook_delivery("lost-3", event="pull_request", status_code=404)["id"])
    return wanted


async def test_concurrent_and_repeated_passes_redeliver_each_failure_once(
    github: GitHubEmulator, make_reconciler: Callable[..., Reconciler]
) -> None:
    wanted = add_mixed_deliveries(github)
    first, second = make_reconciler(), make_reconciler()
    counts = await asyncio.gather(first.reconcile_once(), second.reconcile_once())
    assert sum(counts) == 3
    assert await first.reconcile_once() == 0
    assert await second.reconcile_once() == 0
    assert sorted(github.redeliveries) == sorted(wanted)


async def test_overlapping_passes_after_the_lock_expired_still_redeliver_once(
    github: GitHubEmulator, make_reconciler: Callable[..., Reconciler]
) -> None:
    wanted = add_mixed_deliveries(github)
    github.inject("GET", DELIVERIES, delay=0.4, times=2)  # both passes list slowly…
    first, second = make_reconciler(lock_ttl=0.05), make_reconciler(lock_ttl=0.05)

    async def later() -> int:
        await asyncio.sleep(0.15)  # …and the second starts once the first one's lock expired
        return await second.reconcile_once()

    counts = await asyncio.gather(first.reconcile_once(), later())
    assert len(github.calls_matching("GET", DELIVERIES)) == 2  # both passes really ran
    assert sum(counts) == 3
    assert sorted(github.redeliveries) == sorted(wanted)


async def test_a_held_lock_skips_the_pass(
    github: GitHubEmulator,
    make_reconciler: Callable[..., Reconciler],
    redis_client: aioredis.Redis,
) -> None:
    add_mixed_deliveries(github)
    await redis_client.set(RECONCILER_LOCK, "another replica", px=60_000)
    assert await make_reconciler().reconcile_once() == 0
    assert github.calls_matching("GET", DELIVERIES) == [] and github.redeliveries == []


async def test_all_pages_are_read(
    github: GitHubEmulator, make_reconciler: Callable[..., Reconciler]
) -> None:
    wanted = [
        github.add_hook_delivery(f"lost-{n}", event="issue_comment", status_code=502)["id"]
        for n in range(7)
    ]
    assert await make_reconciler(per_page=3).reconcile_once() == 7
    assert len(github.calls_matching("GET", DELIVERIES)) == 3
    assert sorted(github.redeliveries) == sorted(wanted)


async def test_a_refused_redelivery_is_tried_again_next_pass(
    github: GitHubEmulator, make_reconciler: Callable[..., Reconciler]
) -> None:
    lost = github.add_hook_delivery("lost", event="issue_comment", status_code=502)["id"]
    broken = github.inject("POST", ATTEMPTS, status=502, times=None)
    reconciler = make_reconciler()
    assert await reconciler.reconcile_once() == 0
    broken.times = 0
    assert await reconciler.reconcile_once() == 1
    assert await reconciler.reconcile_once() == 0
    assert github.redeliveries == [lost]


async def test_a_delivery_the_server_stored_is_not_redelivered(
    github: GitHubEmulator,
    make_reconciler: Callable[..., Reconciler],
    redis_client: aioredis.Redis,
) -> None:
    github.add_hook_delivery("stored", event="issue_comment", status_code=504)
    await redis_client.set(delivery_key("stored"), "1")  # stored, but the answer timed out
    assert await make_reconciler().reconcile_once() == 0
    assert github.redeliveries == []


async def test_the_loop_redelivers_new_failures_until_stopped(
    github: GitHubEmulator, make_reconciler: Callable[..., Reconciler]
) -> None:
    stop = asyncio.Event()
    replicas = [make_reconciler(interval=0.05) for _ in range(2)]
    tasks = [asyncio.create_task(r.run(stop)) for r in replicas]
    try:
        async with asyncio.timeout(10):
            first = github.add_hook_delivery("lost-1", event="issue_comment", status_code=502)
            await github.wait_for(lambda: first["id"] in github.redeliveries)
            second = github.add_hook_delivery("lost-2", event="issue_comment", status_code=502)
            await github.wait_for(lambda: second["id"] in github.redeliveries)
            listed = len(github.calls_matching("GET", DELIVERIES))
            await github.wait_for(
                lambda: len(github.calls_matching("GET", DELIVERIES)) > listed + 3
            )
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert github.redeliveries == [first["id"], second["id"]]
