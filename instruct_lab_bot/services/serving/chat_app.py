"""The chat part of the server app: the serving backend, the `ChatService` the dispatcher, the
proxy and the status page share, and the gauge of served models."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import aiohttp
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.chat_records import ChatRecords
from instruct_lab_bot.adapters.storage import link_signing_key, open_store
from instruct_lab_bot.adapters.storage.local import CachedKey
from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.app_keys import METRICS, QUEUE, SETTINGS
from instruct_lab_bot.services.serving import open_serving_backend
from instruct_lab_bot.services.serving.backend import ServingBackend, ServingError
from instruct_lab_bot.services.serving.chat import ChatService
from instruct_lab_bot.services.serving.proxy import CHAT

log = structlog.get_logger(__name__)

#: Opens the serving backend the settings ask for (None: serving is not set up).
ServingFactory = Callable[[Settings], AbstractAsyncContextManager[ServingBackend | None]]
GAUGE_INTERVAL = 30.0


@contextlib.asynccontextmanager
async def no_serving(_settings: Settings) -> AsyncIterator[ServingBackend | None]:
    """Serving switched off: `serve` and `chat` answer that it is not set up."""
    yield None


def default_serving(settings: Settings) -> AbstractAsyncContextManager[ServingBackend | None]:
    """The backend `ILAB_BOT_SERVE_BACKEND` names (`local` by default)."""
    return open_serving_backend(settings)


def chat_ctx(
    factory: ServingFactory,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that opens the backend and the `ChatService` (`app[CHAT]`)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        source = link_signing_key(settings, lambda: app[QUEUE].shared_link_key())
        store = open_store(
            parse_artifacts_url(settings.artifacts_url),
            public_url=settings.public_url,
            signing_key=source,
            link_expiry=settings.link_expiry,
            s3_endpoint_url=settings.s3_endpoint_url,
        )
        async with (
            factory(settings) as backend,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session,
        ):
            chat = ChatService(
                settings,
                ChatRecords(app[QUEUE].redis),
                backend,
                CachedKey(source),
                store,
                app[METRICS].chat,
                session,
            )
            app[CHAT] = chat
            stop = asyncio.Event()
            gauges = asyncio.create_task(_gauges(chat, stop))
            try:
                yield
            finally:
                # stopped, not cancelled: redis-py may swallow a cancel in the middle of a call
                stop.set()
                await gauges
                await store.aclose()

    return ctx


async def _gauges(chat: ChatService, stop: asyncio.Event) -> None:
    """The served-models gauge, refreshed every `GAUGE_INTERVAL` until `stop` is set."""
    while not stop.is_set():
        try:
            await chat.refresh_gauges()
        except (ServingError, RedisError, OSError) as exc:
            log.warning("chat.gauges_failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), GAUGE_INTERVAL)
