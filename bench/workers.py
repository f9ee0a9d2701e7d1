"""Worker and producer processes for the queue figures: ours and a raw Redis Streams loop.

"ours" is the real `Worker` (its `run` loop: a batch read; `process`: `start_job` Lua, lease
heartbeat; `finish`: `finish_job` Lua that stores the end state and XACKs) with the job body
replaced: a no-op command, or spawning the stand-in through the real `run_streaming` for the
dispatch-latency figure; nothing is reported to GitHub. The producer does the dispatcher's
Redis bookkeeping: `get_job`, `create_job`, `update_job(check_run_id)`, `enqueue_job`,
`update_job(stream_id)`.

Processes report to the coordinator through two Redis keys (a few writes a second, nothing per
job): `bench:ready` (INCR once started) and `bench:progress` (HSET pid → "done last_ts").

Usage: python -m bench.workers ROLE --redis URL [...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.redis.streams import StreamEntry
from instruct_lab_bot.adapters.runner import RunLimits, run_streaming, scrub_env
from instruct_lab_bot.core.jobs import Job, State, new_job_id
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.settings import Secret, Settings
from instruct_lab_bot.services import logs
from instruct_lab_bot.services.worker.app import Worker, open_worker
from instruct_lab_bot.services.worker.ilab import line_sink
from instruct_lab_bot.services.worker.log_file import CappedLog

READY_KEY = "bench:ready"
PROGRESS_KEY = "bench:progress"
RAW_STREAM = "bench:raw"
RAW_GROUP = "bench"

#: An `ilab` that does nothing, but answers the worker's start-up `--version` probe.
NOOP_ILAB = ("/bin/sh", "-c", '[ "$1" != --version ] || echo "ilab, version 0.26.1"', "ilab")


class Tally:
    """Jobs done by this process, published every 50 ms (so the cost is not per job)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client: Any = client  # redis-py 5 types replies as Awaitable | Any
        self.done = 0
        self.last = 0.0

    def add(self) -> None:
        self.done += 1
        self.last = time.time()

    async def publish_forever(self) -> None:
        published = -1
        while True:
            if self.done != published:
                published = self.done
                await self.client.hset(PROGRESS_KEY, str(os.getpid()), f"{self.done} {self.last}")
            await asyncio.sleep(0.05)


def bench_settings(redis_url: str, work: Path, standin: tuple[str, ...]) -> Settings:
    return Settings(
        github_app_id="4242",
        github_private_key=Secret("unused: this worker never calls GitHub"),
        webhook_secret=Secret("bench-secret-" + "0" * 32),
        github_api_url="http://127.0.0.1:9",
        redis_url=redis_url,
        artifacts_url=f"file://{work / 'artifacts'}",
        work_dir=work / "jobs",
        ilab_command=standin,
        log_format="json",
        kill_grace=1.0,
        job_timeout=60.0,
    )


class BenchWorker(Worker):
    """The real worker (`run`, `process`, `finish`: lease, heartbeat, `finish_job` Lua with the
    XACK) with a no-op or spawn-only job body, and nothing reported to GitHub."""

    tally: Tally
    spawn: bool = False
    handoff: Path | None = None  # the job body appends its start time here

    async def execute(self, job: Job, cancel: asyncio.Event | None = None) -> JobResult:
        started = time.monotonic()
        if self.handoff is not None:
            with self.handoff.open("a") as out:
                out.write(f"{time.time()!r}\n")
        if not self.spawn:
            return JobResult(state=State.SUCCEEDED, duration=0.0)
        # What `_run_ilab` does once the checkout exists: argv, scrubbed env, the line sink.
        workspace = self.settings.work_dir
        workspace.mkdir(parents=True, exist_ok=True)
        with CappedLog(workspace / "ilab.log", self.settings.log_limit) as log_file:
            run = await run_streaming(
                [*self.settings.ilab_command, "data", "generate"],
                cwd=workspace,
                env=scrub_env(os.environ, secrets=self.settings.secrets()),
                on_line=line_sink(Progress(), log_file, Redactor(self.settings.secrets())),
                cancel=cancel,
                limits=RunLimits(
                    timeout=self.settings.job_timeout, kill_grace=self.settings.kill_grace
                ),
            )
        state = State.SUCCEEDED if run.exit_code == 0 else State.FAILED
        return JobResult(state=state, duration=time.monotonic() - started)

    async def _report(self, job: Job, result: JobResult) -> None:
        """A no-op command reports nothing on GitHub (the GitHub figure measures that)."""

    async def finish(self, entry: StreamEntry, job: Job, result: JobResult) -> None:
        await super().finish(entry, job, result)
        self.tally.add()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def ours_worker(
    redis_url: str, concurrency: int, standin: tuple[str, ...], handoff: Path | None
) -> None:
    stop = _stop_on_signals()
    client = aioredis.Redis.from_url(redis_url)
    tally = Tally(client)
    logs.configure("json", stream=open(os.devnull, "w"))  # noqa: PTH123, SIM115 - as deployed
    with tempfile.TemporaryDirectory(prefix="ilab-bench-worker-") as tmp:
        settings = bench_settings(redis_url, Path(tmp), standin or NOOP_ILAB)
        async with open_worker(settings, concurrency=concurrency) as real:
            worker = BenchWorker(real.deps, concurrency=concurrency)
            worker.tally = tally
            worker.spawn = bool(standin)
            worker.handoff = handoff
            await real.deps.queue.ensure_groups()
            publisher = asyncio.create_task(tally.publish_forever())
            await client.incr(READY_KEY)
            await worker.run(stop)
            publisher.cancel()
    await client.aclose()


def bench_job(number: int) -> Job:
    return Job(
        id=new_job_id(),
        command="generate",
        installation_id=1,
        owner="instructlab",
        repo="taxonomy",
        pr_number=number % 100 + 1,
        requester="contributor",
        delivery_id=f"bench-{number}",
        comment_id=number,
        head_sha=f"{number:040x}",  # one live job per PR head: every bench job is its own
        head_ref="bench",
        base_branch="main",
        check_run_id=number + 1,
    )


async def enqueue_like_dispatcher(queue: Queue, job: Job) -> float:
    """The dispatcher's Redis bookkeeping for one job (its GitHub calls left out); returns the
    time just before the XADD."""
    await queue.get_job(job.id)
    await queue.create_job(job)
    await queue.update_job(job.id, check_run_id=job.check_run_id)
    before = time.time()
    stream_id = await queue.enqueue_job(job)
    await queue.update_job(job.id, stream_id=stream_id)
    return before


async def ours_produce(redis_url: str, count: int, concurrency: int) -> dict[str, float]:
    queue = Queue.from_url(redis_url)
    await queue.ensure_groups()
    jobs = [bench_job(i) for i in range(count)]
    started = time.perf_counter()
    await _fan_out(jobs, concurrency, lambda job: enqueue_like_dispatcher(queue, job))
    seconds = time.perf_counter() - started
    await queue.aclose()
    return {"count": count, "seconds": seconds}


async def _fan_out(
    items: list[Job], concurrency: int, work: Callable[[Job], Awaitable[object]]
) -> None:
    pending = iter(items)

    async def lane() -> None:
        for item in pending:
            await work(item)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def raw_worker(redis_url: str, concurrency: int) -> None:
    """XREADGROUP COUNT 1 BLOCK → XACK, `concurrency` loops: the floor for a stream consumer."""
    stop = _stop_on_signals()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    tally = Tally(client)
    with contextlib.suppress(Exception):
        await client.xgroup_create(RAW_STREAM, RAW_GROUP, id="0", mkstream=True)
    name = f"raw-{os.getpid()}"

    async def loop() -> None:
        while not stop.is_set():
            try:
                reply: Any = await client.xreadgroup(
                    RAW_GROUP, name, {RAW_STREAM: ">"}, count=1, block=1000
                )
            except redis.exceptions.TimeoutError:  # paused (SIGSTOP) past the read's deadline
                continue
            for _stream, entries in reply or ():
                for entry_id, _fields in entries:
                    await client.xack(RAW_STREAM, RAW_GROUP, entry_id)
                    tally.add()

    publisher = asyncio.create_task(tally.publish_forever())
    await client.incr(READY_KEY)
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    publisher.cancel()
    await client.aclose()


async def raw_produce(redis_url: str, count: int, concurrency: int) -> dict[str, float]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    with contextlib.suppress(Exception):
        await client.xgroup_create(RAW_STREAM, RAW_GROUP, id="0", mkstream=True)
    remaining = iter(range(count))

    async def lane() -> None:
        for number in remaining:
            await client.xadd(RAW_STREAM, {"job": str(number)})

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    await client.aclose()
    return {"count": count, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "role", choices=("ours-worker", "ours-produce", "raw-worker", "raw-produce")
    )
    parser.add_argument("--redis", required=True)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--standin", default="[]", help="JSON argv to spawn per job")
    parser.add_argument("--handoff", type=Path, default=None, help="log each job's start time")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result: dict[str, float] = {}
    if args.role == "ours-worker":
        standin = tuple(json.loads(args.standin))
        asyncio.run(ours_worker(args.redis, args.concurrency, standin, args.handoff))
    elif args.role == "raw-worker":
        asyncio.run(raw_worker(args.redis, args.concurrency))
    elif args.role == "ours-produce":
        result = asyncio.run(ours_produce(args.redis, args.count, args.concurrency))
    else:
        result = asyncio.run(raw_produce(args.redis, args.count, args.concurrency))
    if args.json is not None:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
