"""The webhook server: verify, classify, append to Redis, answer. Never calls GitHub.

GitHub waits 10 s for an answer and does not retry by itself, so the handler does only what
must happen before the 2xx: check the signature, decide whether the delivery matters, and
store it durably. Everything that talks to GitHub happens in the dispatcher, which runs as a
background task of this app (and can run in any number of replicas: it is a consumer group).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from .dispatcher import Dispatcher
from .github import GitHubApp
from .queue import Queue
from .settings import Settings
from .storage import artifact_routes, parse_artifacts_url
from .webhooks import MAX_BODY_BYTES, WebhookError, classify, parse_delivery

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
QUEUE = web.AppKey("queue", Queue)
GITHUB = web.AppKey("github", GitHubApp)
DISPATCHER_TASK = web.AppKey("dispatcher_task", asyncio.Task[None])


async def webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, "payload too large")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "payload too large")
    headers = request.headers
    try:
        delivery = parse_delivery(
            body,
            event=headers.get("X-GitHub-Event"),
            delivery_id=headers.get("X-GitHub-Delivery"),
            signature=headers.get("X-Hub-Signature-256"),
            secret=settings.webhook_secret.value.encode(),
        )
        if delivery.event == "ping":
            return web.json_response({"message": "pong"})
        intent = classify(delivery, settings.username)
    except WebhookError as exc:
        log.info("webhook.rejected", status=exc.status, reason=exc.message)
        return _error(exc.status, exc.message)
    if intent is None:
        return web.json_response({"message": "nothing to do"}, status=202)
    try:
        entry = await request.app[QUEUE].add_event(
            delivery.delivery_id, {"type": intent.kind, "intent": intent.to_json()}
        )
    except (RedisError, OSError) as exc:
        log.error("webhook.store_failed", delivery_id=delivery.delivery_id, error=repr(exc))
        return _error(503, "could not store the delivery; please redeliver")
    if entry is None:
        log.info("webhook.duplicate", delivery_id=delivery.delivery_id)
        return web.json_response({"message": "duplicate delivery"}, status=200)
    log.info(
        "webhook.queued",
        delivery_id=delivery.delivery_id,
        entry=entry,
        repo=f"{intent.owner}/{intent.repo}",
        pr=intent.pr_number,
        commands=[c.name for c in intent.commands],
    )
    return web.json_response({"message": "queued", "entry": entry}, status=202)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(2):
            await request.app[QUEUE].ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return web.json_response({"status": "unavailable", "redis": repr(exc)}, status=503)
    return web.json_response({"status": "ready"})


def create_app(settings: Settings, *, dispatcher: bool = True) -> web.Application:
    """Build the server app; resources open and close in cleanup contexts."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app.router.add_post("/api/github/hook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    location = parse_artifacts_url(settings.artifacts_url)
    if location.root is not None:
        app.router.add_routes(artifact_routes(location.root.resolve(), settings.signing_key))
    app.cleanup_ctx.append(_redis_ctx)
    if dispatcher:
        app.cleanup_ctx.append(_dispatcher_ctx)
    return app


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    queue = Queue.from_url(app[SETTINGS].redis_url, history_ttl=app[SETTINGS].job_history_ttl)
    app[QUEUE] = queue
    try:
        await queue.ensure_groups()
    except (RedisError, OSError) as exc:  # /readyz reports it; the dispatcher retries
        log.warning("redis.unavailable_at_start", error=repr(exc))
    yield
    await queue.aclose()


async def _dispatcher_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    timeout = aiohttp.ClientTimeout(total=settings.github_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        github = GitHubApp(
            session,
            app_id=settings.github_app_id,
            private_key=settings.github_private_key.value,
            api_url=settings.github_api_url,
            timeout=settings.github_timeout,
        )
        app[GITHUB] = github
        stop = asyncio.Event()
        task = asyncio.create_task(Dispatcher(settings, app[QUEUE], github).run(stop))
        app[DISPATCHER_TASK] = task
        yield
        stop.set()
        # Let an event in hand finish; a stuck one is cancelled (it stays pending in Redis).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, timeout=10)
