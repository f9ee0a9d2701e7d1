"""A job for a pool no live worker serves, through the real server, dispatcher, Redis and
GitHub emulator: the reply and the queued check run say so, the pool's gauges and counter
show it (the alert rule's input), and the job runs once a worker of that pool starts."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from instruct_lab_bot.services.app_keys import METRICS, QUEUE
from instruct_lab_bot.services.metrics import ServerMetrics
from instruct_lab_bot.services.worker.app import open_worker
from testkit.harness import run_bot
from tests.fixtures.world import World


def sample(metrics: ServerMetrics, name: str, capability: str) -> float:
    value = metrics.registry.get_sample_value(name, {"capability": capability})
    return -1.0 if value is None else value


async def test_a_job_without_a_live_worker_says_so_then_runs(world: World) -> None:
    precheck_only = replace(world.settings, worker_capabilities=("precheck",))
    async with run_bot(precheck_only, workers=1) as bot:
        queue = bot.app[QUEUE]
        async with asyncio.timeout(30):  # the precheck worker is registered (not generate's)
            while not (await queue.live_capabilities())["precheck"]:
                await asyncio.sleep(0.05)
        await world.comment(bot)
        async with asyncio.timeout(30):
            await world.gh.wait_for(lambda: bool(world.bot_comments()))
        (reply,) = world.bot_comments()
        assert "queued; no worker can run `generate` right now" in reply["body"]
        check_run = world.check_run()
        assert check_run["status"] == "queued"
        assert check_run["output"]["title"] == "Queued; no worker can run `generate` right now"
        metrics = bot.app[METRICS]
        await metrics.queue.refresh(queue)
        assert sample(metrics, "instruct_lab_bot_jobs_queued_without_worker_total", "generate")
        assert sample(metrics, "instruct_lab_bot_pool_workers_live", "generate") == 0
        assert sample(metrics, "instruct_lab_bot_pool_workers_live", "precheck") == 1
        assert sample(metrics, "instruct_lab_bot_pool_waiting_jobs", "generate") == 1

        async with contextlib.AsyncExitStack() as stack:  # a generate worker comes up
            worker = await stack.enter_async_context(open_worker(world.settings))
            running = asyncio.create_task(worker.run(bot.stop))
            result = await world.result_comment()
            bot.stop.set()
            await running
    assert "generate" in result["body"]
    assert world.check_run()["conclusion"] == "success"
    assert len(world.bot_comments()) == 2  # the notice and the result, nothing twice
