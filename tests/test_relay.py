"""`instruct-lab-bot relay`: a smee.io-compatible channel replayed into the real server.

The channel is a local SSE server that speaks smee's format (the request's headers as keys,
`body` as parsed JSON, `timestamp`; `ready` and `ping` events), optionally with gosmee's
`bodyB` (the raw bytes). Deliveries go to the bot's real aiohttp app, whose signature check
decides: GitHub-shaped compact bodies verify either way, a body only the raw bytes reproduce
verifies only with `bodyB`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from instruct_lab_bot.core.relay_events import RelayedDelivery, parse_channel_event
from instruct_lab_bot.core.retry import RetryPolicy, forever
from instruct_lab_bot.core.webhooks import sign
from instruct_lab_bot.services.relay import run_relay
from instruct_lab_bot.services.server import create_app
from tests.fixtures.bot import WEBHOOK_SECRET, make_settings
from tests.test_server import stream_length

FAST = forever(RetryPolicy(base_delay=0.01, max_delay=0.05))


class Channel:
    """A smee-style channel: POST /c publishes, GET /c streams (closing after `close_after`)."""

    def __init__(self, *, raw_bodies: bool, close_after: int | None = None) -> None:
        self.raw_bodies = raw_bodies
        self.close_after = close_after
        self.listeners: list[asyncio.Queue[dict[str, Any]]] = []
        self.connections = 0
        self.changed = asyncio.Condition()

    async def listening(self, connection: int = 1) -> None:
        """Wait until the `connection`-th stream is open and listening."""
        async with self.changed:
            await self.changed.wait_for(
                lambda: self.connections >= connection and bool(self.listeners)
            )

    async def publish(self, request: web.Request) -> web.Response:
        raw = await request.read()
        message: dict[str, Any] = {k.lower(): v for k, v in request.headers.items()}
        message["body"] = json.loads(raw)
        message["timestamp"] = 1733456789000
        if self.raw_bodies:
            message["bodyB"] = base64.b64encode(raw).decode()
        for queue in self.listeners:
            queue.put_nowait(message)
        return web.Response(status=200)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.listeners.append(queue)
        self.connections += 1
        await response.write(b"event: ready\ndata: {}\n\n")
        async with self.changed:
            self.changed.notify_all()
        sent = 0
        try:
            while self.close_after is None or sent < self.close_after:
                message = await queue.get()
                await response.write(b"event: ping\ndata: {}\n\n: keep-alive comment\n\n")
                await response.write(f"data: {json.dumps(message)}\n\n".encode())
                sent += 1
        finally:
            self.listeners.remove(queue)
        return response


@contextlib.asynccontextmanager
async def channel_server(channel: Channel) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/c", channel.stream)
    app.router.add_post("/c", channel.publish)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/c"))
    finally:
        await server.close()


@pytest.fixture
async def bot(redis_url: str, artifacts_dir: Path) -> AsyncIterator[str]:
    settings = make_settings(redis_url=redis_url, artifacts_url=f"file://{artifacts_dir}")
    server = TestServer(create_app(settings, dispatcher=False))
    await server.start_server()
    yield str(server.make_url("/api/github/hook"))
    await server.close()


class Relay:
    """`run_relay` as a task; `next()` waits for the next forwarded delivery's status."""

    def __init__(self) -> None:
        self.results: asyncio.Queue[tuple[RelayedDelivery, int]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def next(self) -> tuple[RelayedDelivery, int]:
        """The next result, or the relay's own crash (never a silent wait)."""
        assert self.task is not None
        getter = asyncio.ensure_future(self.results.get())
        await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            self.task.result()  # raises what stopped the relay
            raise AssertionError("the relay stopped")
        return getter.result()


@contextlib.asynccontextmanager
async def relaying(channel_url: str, target: str) -> AsyncIterator[Relay]:
    relay = Relay()
    task = relay.task = asyncio.create_task(
        run_relay(
            channel_url,
            target,
            on_forwarded=lambda d, s: relay.results.put_nowait((d, s)),
            reconnect=FAST,
        )
    )
    try:
        yield relay
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def send_via_channel(
    session: aiohttp.ClientSession, channel_url: str, body: bytes, delivery: str
) -> None:
    """What GitHub does: POST the signed delivery to the channel's public URL."""
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issue_comment",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET.encode()),
        "User-Agent": "GitHub-Hookshot/abc123",
    }
    async with session.post(channel_url, data=body, headers=headers) as response:
        assert response.status == 200


def compact(payload: dict[str, Any]) -> bytes:
    """GitHub's own serialisation: no spaces, UTF-8 unescaped."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("raw_bodies", [False, True], ids=["smee", "gosmee-bodyB"])
async def test_a_github_delivery_reaches_the_server_and_verifies(
    bot: str, redis_url: str, pr_comment_payload: Any, raw_bodies: bool
) -> None:
    channel = Channel(raw_bodies=raw_bodies)
    payload = pr_comment_payload()
    payload["comment"]["body"] += " — déjà vu ✓"  # non-ASCII, as GitHub sends it
    async with (
        channel_server(channel) as url,
        aiohttp.ClientSession() as session,
        relaying(url, bot) as relay,
    ):
        await channel.listening()
        await send_via_channel(session, url, compact(payload), "d-relay-1")
        delivery, status = await relay.next()
    assert status == 202  # the server's signature check passed and the command was queued
    assert delivery.raw is raw_bodies
    assert delivery.headers["x-github-delivery"] == "d-relay-1"
    assert "host" not in delivery.headers and "timestamp" not in delivery.headers
    assert await stream_length(redis_url) == 1


async def test_only_raw_bytes_verify_a_body_json_stringify_would_change(
    bot: str, pr_comment_payload: Any
) -> None:
    body = json.dumps(pr_comment_payload(), indent=2, ensure_ascii=True).encode()
    statuses = {}
    for raw_bodies in (False, True):
        channel = Channel(raw_bodies=raw_bodies)
        async with (
            channel_server(channel) as url,
            aiohttp.ClientSession() as session,
            relaying(url, bot) as relay,
        ):
            await channel.listening()
            await send_via_channel(session, url, body, f"d-{raw_bodies}")
            statuses[raw_bodies] = (await relay.next())[1]
    assert statuses == {False: 401, True: 202}  # smee-client's re-serialisation breaks it


async def test_reconnects_after_the_channel_drops_and_ignores_ready_and_ping(
    bot: str, pr_comment_payload: Any
) -> None:
    channel = Channel(raw_bodies=True, close_after=1)
    async with (
        channel_server(channel) as url,
        aiohttp.ClientSession() as session,
        relaying(url, bot) as relay,
    ):
        for number in (1, 2, 3):
            await channel.listening(number)
            payload = pr_comment_payload()
            payload["comment"]["id"] += number  # a new comment each time (no duplicate)
            await send_via_channel(session, url, compact(payload), f"d-re-{number}")
            delivery, status = await relay.next()
            assert (delivery.delivery_id, status) == (f"d-re-{number}", 202)
        assert relay.results.empty()  # ready/ping events were never forwarded
    assert channel.connections >= 3


def test_channel_events_are_parsed_like_smee_client() -> None:
    assert parse_channel_event("ready", "{}") is None
    assert parse_channel_event("ping", "{}") is None
    message = {
        "x-github-event": "ping",
        "Host": "smee.io",
        "content-length": "2",
        "body": {"zen": "é/ü", "n": 1},
        "query": {},
        "timestamp": 1,
    }
    delivery = parse_channel_event("message", json.dumps(message))
    assert delivery is not None
    assert delivery.headers == {"x-github-event": "ping"}
    assert delivery.body == '{"zen":"é/ü","n":1}'.encode()  # JSON.stringify's output
    for bad in ("not json", "[]", '{"x-github-event": "ping"}', '{"bodyB": "%%%"}'):
        with pytest.raises(ValueError):
            parse_channel_event("message", bad)
