"""Run the real server (with its dispatcher) and real workers in this event loop.

Used by the end-to-end tests and by `make demo`, so both exercise the exact code paths a
deployment runs: the same app factory, the same `open_worker`, only the settings differ.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.app_keys import QUEUE
from instruct_lab_bot.services.server import create_app
from instruct_lab_bot.services.serving.chat_app import ServingFactory, default_serving
from instruct_lab_bot.services.worker.app import Worker, open_worker


@dataclass
class RunningBot:
    """A started server and its workers; `url` is the server's base URL, `app` the server app
    (for its metrics and queue, e.g. `bot.app[METRICS].queue.refresh(bot.app[QUEUE])`)."""

    settings: Settings
    url: str
    app: web.Application
    workers: list[Worker] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def webhook_url(self) -> str:
        return self.url + "/api/github/hook"


@contextlib.asynccontextmanager
async def run_bot(
    settings: Settings,
    *,
    workers: int = 1,
    concurrency: int = 1,
    tracing: bool | None = None,
    serving: ServingFactory = default_serving,
) -> AsyncIterator[RunningBot]:
    """Serve on `settings.host:settings.port` and run `workers` worker loops until exit.

    `tracing` and `serving` are `create_app`'s: True adds the OpenTelemetry server middleware;
    `serving` opens the backend that serves PR models.
    """
    app = create_app(settings, tracing=tracing, serving=serving)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    bot = RunningBot(settings, f"http://{settings.host}:{settings.port}", app)
    async with contextlib.AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []
        for _ in range(workers):
            worker = await stack.enter_async_context(open_worker(settings, concurrency=concurrency))
            bot.workers.append(worker)
            tasks.append(asyncio.create_task(worker.run(bot.stop)))
        try:
            await _registered(app[QUEUE], [w.name for w in bot.workers], tasks)
            yield bot
        finally:
            bot.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()


async def _registered(queue: Queue, names: list[str], tasks: list[asyncio.Task[None]]) -> None:
    """Wait until every worker is in the registry, as a deployment's would be before its first
    job: the dispatcher tells a PR when no live worker can run its job (worker pools)."""
    while names:
        live = {info.get("name") for info in await queue.live_workers()}
        if set(names) <= live or any(task.done() for task in tasks):
            return
        await asyncio.sleep(0.02)
