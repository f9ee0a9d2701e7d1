"""The webhook server: verify, classify, append to Redis, answer. Never calls GitHub.

GitHub waits 10 s for an answer and does not retry by itself, so the handler does only what
must happen before the 2xx: check the signature, decide whether the delivery matters, and
store it durably. Everything that talks to GitHub happens in the dispatcher, which runs as a
background task of this app (and can run in any number of replicas: it is a consumer group).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github import build_github_app
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.redelivery import RedeliveryLedger
from instruct_lab_bot.adapters.redis.write_budget import WriteBudget
from instruct_lab_bot.adapters.storage import link_signing_key
from instruct_lab_bot.adapters.storage.local import artifact_routes
from instruct_lab_bot.adapters.tracing import current_traceparent, server_middlewares
from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import (
    MAX_BODY_BYTES,
    CommandIntent,
    Delivery,
    Intent,
    WebhookError,
    check_delivery,
    check_headers,
    classify,
    parse_payload,
    skip_unparsed,
)
from instruct_lab_bot.services.app_keys import DISPATCHER_TASK, GITHUB, METRICS, QUEUE, SETTINGS
from instruct_lab_bot.services.dispatcher import Dispatcher
from instruct_lab_bot.services.job_files import job_file_routes, job_files_ctx
from instruct_lab_bot.services.metrics import ServerMetrics, metrics_response
from instruct_lab_bot.services.reconciler import Reconciler
from instruct_lab_bot.services.serving.chat_app import ServingFactory, chat_ctx, default_serving
from instruct_lab_bot.services.serving.proxy import CHAT, chat_routes
from instruct_lab_bot.services.serving.sweep import (
    ServingSweeper,
    github_is_open,
    pr_notifier,
)
from instruct_lab_bot.services.status_page import api_errors, status_routes

log = structlog.get_logger(__name__)


async def metrics_endpoint(request: web.Request) -> web.Response:
    return metrics_response(request.app[METRICS].registry)


async def webhook(request: web.Request) -> web.Response:
    """Verify, classify, store, answer; records one metric sample per delivery."""
    metrics = request.app[METRICS]
    started = time.perf_counter()
    outcome = _Outcome()
    try:
        return await _webhook(request, outcome)
    finally:
        metrics.handling.observe(time.perf_counter() - started)
        metrics.webhooks.labels(outcome.event, outcome.action, outcome.result).inc()
        if outcome.result == "rejected" and outcome.status == 401:
            metrics.signature_failures.inc()


@dataclass
class _Outcome:
    """Labels for the webhook metrics; event/action are only taken from verified payloads
    (an unsigned request must not be able to mint label values)."""

    event: str = "unverified"
    action: str = ""
    result: str = "error"
    status: int = 500


_LABEL = re.compile(r"[a-z_]{1,40}")


async def _webhook(request: web.Request, outcome: _Outcome) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        body = await _read_body(request)
        delivery = _verify(body, request, settings, outcome)
        if isinstance(delivery, web.Response):
            return delivery
        intent = classify(
            delivery, settings.username, repos=settings.repos, aliases=settings.legacy_usernames
        )
    except WebhookError as exc:
        log.info("webhook.rejected", status=exc.status, reason=exc.message)
        return _reject(outcome, exc.status, exc.message)
    if intent is None:
        outcome.result, outcome.status = "ignored", 202
        return _json(_NOTHING_TO_DO, 202)
    if isinstance(intent, CommandIntent):
        _count_commands(request.app[METRICS], intent)
    return await _store(request.app[QUEUE], delivery, intent, outcome)


async def _read_body(request: web.Request) -> bytes:
    """The body, once its headers are well-formed and its length possible: an unsigned or
    oversized body is refused before any of it is read (or hashed). A body without a
    `Content-Length` is cut off as soon as it grows past the limit (`client_max_size`)."""
    headers = request.headers
    check_headers(
        event=headers.get("X-GitHub-Event"),
        delivery_id=headers.get("X-GitHub-Delivery"),
        signature=headers.get("X-Hub-Signature-256"),
    )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise WebhookError(413, "payload too large")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise WebhookError(413, "payload too large") from None


def _verify(
    body: bytes, request: web.Request, settings: Settings, outcome: _Outcome
) -> Delivery | web.Response:
    """Check the signature, then answer what needs no classifying (skipped events, `ping`)
    right here; raises `WebhookError` for a delivery to reject."""
    headers = request.headers
    event, delivery_id = check_delivery(
        body,
        event=headers.get("X-GitHub-Event"),
        delivery_id=headers.get("X-GitHub-Delivery"),
        signature=headers.get("X-Hub-Signature-256"),
        secret=settings.webhook_secret.value.encode(),
    )
    outcome.event = event
    skipped = skip_unparsed(body, event, settings.username, settings.legacy_usernames)
    if skipped is not None:  # most traffic: decided on the verified bytes, never parsed
        outcome.action, outcome.result, outcome.status = skipped, "ignored", 202
        return _json(_NOTHING_TO_DO, 202)
    delivery = Delivery(event, delivery_id, parse_payload(body))
    action = delivery.payload.get("action")
    outcome.action = action if isinstance(action, str) and _LABEL.fullmatch(action) else ""
    if delivery.event == "ping":
        outcome.result, outcome.status = "ignored", 200
        return _json(_PONG, 200)
    return delivery


def _count_commands(metrics: ServerMetrics, intent: CommandIntent) -> None:
    for command in intent.commands:
        name = command.name if command.known else "unknown"
        metrics.commands.labels(name, "received").inc()


async def _store(
    queue: Queue, delivery: Delivery, intent: Intent, outcome: _Outcome
) -> web.Response:
    """Append the intent to the events stream (once per delivery id) and answer."""
    # A comment's commands are stored once, whatever the delivery id: a replayed signed body
    # under a new X-GitHub-Delivery is a duplicate, not a second job.
    comment = (
        (RepoRef(intent.owner, intent.repo), intent.comment_id)
        if isinstance(intent, CommandIntent)
        else None
    )
    try:
        entry = await queue.add_event(
            delivery.delivery_id,
            {"type": intent.kind, "intent": intent.to_json(), "traceparent": current_traceparent()},
            comment=comment,
        )
    except (RedisError, OSError) as exc:
        log.error("webhook.store_failed", delivery_id=delivery.delivery_id, error=repr(exc))
        return _reject(outcome, 503, "could not store the delivery; please redeliver", "error")
    if entry is None:
        log.debug("webhook.duplicate", delivery_id=delivery.delivery_id)  # counted, not logged
        outcome.result, outcome.status = "duplicate", 200
        return _json(_DUPLICATE, 200)
    log.debug(  # no info line per delivery: the dispatcher logs `dispatcher.event`
        "webhook.queued",
        delivery_id=delivery.delivery_id,
        entry=entry,
        kind=intent.kind,
        repo=f"{intent.owner}/{intent.repo}",
    )
    outcome.result, outcome.status = "queued", 202
    return _json(orjson.dumps({"message": "queued", "entry": entry}), 202)


_NOTHING_TO_DO = b'{"message":"nothing to do"}'
_PONG = b'{"message":"pong"}'
_DUPLICATE = b'{"message":"duplicate delivery"}'


def _json(body: bytes, status: int) -> web.Response:
    """A pre-serialised JSON answer: cheaper than `web.json_response` on the hot path."""
    return web.Response(body=body, status=status, content_type="application/json")


def _reject(outcome: _Outcome, status: int, message: str, result: str = "rejected") -> web.Response:
    outcome.result, outcome.status = result, status
    return _error(status, message)


def _error(status: int, message: str) -> web.Response:
    return _json(orjson.dumps({"error": message}), status)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(2):
            await request.app[QUEUE].ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return web.json_response({"status": "unavailable", "redis": repr(exc)}, status=503)
    return web.json_response({"status": "ready"})


def create_app(
    settings: Settings,
    *,
    dispatcher: bool = True,
    tracing: bool | None = None,
    serving: ServingFactory = default_serving,
    chat: bool | None = None,
) -> web.Application:
    """Build the server app; resources open and close in cleanup contexts.

    `tracing` adds the OpenTelemetry middleware (default: when `OTEL_*` asks for tracing);
    `serving` opens the backend that serves PR models for chat; `chat` (default: with the
    dispatcher, whose Redis user may write chat records) mounts the chat page and proxy.
    """
    middlewares = [*server_middlewares(force=tracing), api_errors]
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[SETTINGS] = settings
    app[METRICS] = ServerMetrics()
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_post("/api/github/hook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_routes(status_routes())
    location = parse_artifacts_url(settings.artifacts_url)
    if location.root is not None:
        key = link_signing_key(settings, lambda: app[QUEUE].shared_link_key())
        app.router.add_routes(artifact_routes(location.root.resolve(), key))
    app.cleanup_ctx.append(_redis_ctx)
    if settings.stable_links:
        app.router.add_routes(job_file_routes())
        app.cleanup_ctx.append(job_files_ctx)
    if dispatcher if chat is None else chat:
        app.router.add_routes(chat_routes())
        app.cleanup_ctx.append(chat_ctx(serving))
    if dispatcher:
        app.cleanup_ctx.append(_dispatcher_ctx)
    return app


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    queue = Queue.from_settings(app[SETTINGS])
    app[QUEUE] = queue
    try:  # the events group; the dispatcher makes the jobs group (a webhook user may not)
        await queue.ensure_groups(jobs=False)
    except (RedisError, OSError) as exc:  # /readyz reports it; the dispatcher retries
        log.warning("redis.unavailable_at_start", error=repr(exc))
    stop = asyncio.Event()
    gauges = asyncio.create_task(app[METRICS].queue.run(queue, stop))
    yield
    stop.set()
    await gauges
    await queue.aclose()


async def _dispatcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """The dispatcher and the missed-deliveries reconciler run beside the webhook handler."""
    settings = app[SETTINGS]
    timeout = aiohttp.ClientTimeout(total=settings.github_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        budget = WriteBudget(
            app[QUEUE].redis, limit=settings.github_write_limit, window=settings.github_write_window
        )
        github = build_github_app(
            session, settings, budget, on_response=app[METRICS].github.observe
        )
        app[METRICS].github.watch_quota(lambda: github.quota.waiting)
        app[GITHUB] = github
        stop = asyncio.Event()
        dispatcher = Dispatcher(
            settings, app[QUEUE], github, metrics=app[METRICS], chat=app.get(CHAT)
        )
        tasks = [asyncio.create_task(dispatcher.run(stop))]
        if settings.reconcile_interval:
            ledger = RedeliveryLedger(app[QUEUE].redis)
            reconciler = Reconciler(github, ledger, interval=settings.reconcile_interval)
            tasks.append(asyncio.create_task(reconciler.run(stop)))
        chat = app.get(CHAT)
        if chat is not None and chat.backend is not None:  # nothing served that no PR owns
            notify = pr_notifier(github, settings, Redactor(settings.secrets()))
            sweeper = ServingSweeper(
                chat.backend, github_is_open(github), settings, on_removed=notify
            )
            tasks.append(asyncio.create_task(sweeper.run(stop)))
        app[DISPATCHER_TASK] = tasks[0]
        yield
        stop.set()
        # Let an event in hand finish; a stuck one is cancelled (it stays pending in Redis).
        _done, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
