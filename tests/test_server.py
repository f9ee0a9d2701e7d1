"""The webhook endpoint through real HTTP, with real Redis and real GitHub payload examples."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from instruct_lab_bot.adapters.redis.keys import EVENTS_STREAM
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.webhooks import sign
from instruct_lab_bot.services.server import create_app
from tests.fixtures.bot import WEBHOOK_SECRET, make_settings, post_webhook
from tests.fixtures.redis import free_port


@pytest.fixture
async def server(redis_url: str, artifacts_dir: Path) -> AsyncIterator[TestServer]:
    settings = make_settings(redis_url=redis_url, artifacts_url=f"file://{artifacts_dir}")
    test_server = TestServer(create_app(settings, dispatcher=False))
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def stream_length(redis_url: str) -> int:
    queue = Queue.from_url(redis_url)
    try:
        return int(await queue.redis.xlen(EVENTS_STREAM))
    finally:
        await queue.aclose()


async def test_health(server: TestServer, session: aiohttp.ClientSession) -> None:
    async with session.get(server.make_url("/healthz")) as response:
        assert response.status == 200
    async with session.get(server.make_url("/readyz")) as response:
        assert response.status == 200


async def test_ping_and_unhandled_events(
    server: TestServer,
    session: aiohttp.ClientSession,
    redis_url: str,
    webhook_example: Callable[..., dict[str, Any]],
) -> None:
    url = str(server.make_url("/api/github/hook"))
    status, _ = await post_webhook(session, url, "ping", webhook_example("ping"))
    assert status == 200
    status, _ = await post_webhook(
        session, url, "pull_request", webhook_example("pull_request", "unlabeled")
    )
    assert status == 202
    status, _ = await post_webhook(
        session, url, "issue_comment", webhook_example("issue_comment", "created")
    )
    assert status == 202  # a comment on a plain issue starts nothing
    assert await stream_length(redis_url) == 0


async def test_command_is_queued_once_per_delivery(
    server: TestServer,
    session: aiohttp.ClientSession,
    redis_url: str,
    pr_comment_payload: Callable[..., dict[str, Any]],
) -> None:
    url = str(server.make_url("/api/github/hook"))
    payload = pr_comment_payload()
    status, body = await post_webhook(session, url, "issue_comment", payload, delivery="d-1")
    assert status == 202 and body["message"] == "queued"
    status, body = await post_webhook(session, url, "issue_comment", payload, delivery="d-1")
    assert status == 200 and body["message"] == "duplicate delivery"
    edited = {**payload, "action": "edited"}
    status, _ = await post_webhook(session, url, "issue_comment", edited)
    assert status == 202
    bot = pr_comment_payload()
    bot["comment"]["user"]["type"] = "Bot"
    status, _ = await post_webhook(session, url, "issue_comment", bot)
    assert status == 202
    assert await stream_length(redis_url) == 1


async def test_bad_requests(
    server: TestServer,
    session: aiohttp.ClientSession,
    redis_url: str,
    pr_comment_payload: Callable[..., dict[str, Any]],
) -> None:
    url = str(server.make_url("/api/github/hook"))
    payload = pr_comment_payload()
    status, body = await post_webhook(session, url, "issue_comment", payload, signature="")
    assert status == 401 and "missing" in body["error"]
    wrong = sign(b"something else", WEBHOOK_SECRET.encode())
    status, _ = await post_webhook(session, url, "issue_comment", payload, signature=wrong)
    assert status == 401
    status, _ = await post_webhook(session, url, "issue_comment", payload, secret="other")
    assert status == 401
    status, _ = await post_webhook(session, url, "issue_comment", payload, signature="sha256=zz")
    assert status == 401
    status, body = await post_webhook(session, url, "issue_comment", b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, _ = await post_webhook(session, url, "issue_comment", b"[1, 2]")
    assert status == 400
    big = json.dumps({"padding": "x" * (25 * 1024 * 1024)}).encode()
    status, _ = await post_webhook(session, url, "issue_comment", big)
    assert status == 413
    assert await stream_length(redis_url) == 0


async def test_redis_down_answers_503(
    artifacts_dir: Path,
    session: aiohttp.ClientSession,
    pr_comment_payload: Callable[..., dict[str, Any]],
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(redis_url=dead, artifacts_url=f"file://{artifacts_dir}")
    async with TestServer(create_app(settings, dispatcher=False)) as server:
        url = str(server.make_url("/api/github/hook"))
        status, body = await post_webhook(session, url, "issue_comment", pr_comment_payload())
        assert status == 503 and "redeliver" in body["error"]
        async with session.get(server.make_url("/readyz")) as response:
            assert response.status == 503
