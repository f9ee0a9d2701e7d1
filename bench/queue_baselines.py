"""arq and saq, the queues people would pick instead, at their default settings.

Runs with the interpreter of arq's or saq's own venv (see `bench.baselines`), so it imports only
the standard library, that queue and its redis-py; it is started by path, not as part of `bench`. It
speaks the same small protocol as `bench.workers`: `bench:ready` (INCR once started) and
`bench:progress` (HSET pid → "done last_ts", every 50 ms).

Roles:
  {arq,saq}-worker   a worker process (default concurrency: 10 jobs at once for both);
                     jobs: `noop`, and `spawn` (appends its start time to --handoff, runs the
                     stand-in argv and waits for it)
  {arq,saq}-produce  enqueue --count `noop` jobs from --concurrency tasks; prints timing
  {arq,saq}-latency  enqueue --count `spawn` jobs one at a time; records the time just before
                     each enqueue, waits until the stand-in wrote its start time to --log
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

READY_KEY = "bench:ready"
PROGRESS_KEY = "bench:progress"


class Tally:
    def __init__(self, client: Any) -> None:
        self.client = client
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


def job_functions(tally: Tally, standin: list[str], handoff: Path | None) -> tuple[Any, Any]:
    async def noop(_ctx: Any) -> None:
        tally.add()

    async def spawn(_ctx: Any) -> None:
        if handoff is not None:
            with handoff.open("a") as out:
                out.write(f"{time.time()!r}\n")
        process = await asyncio.create_subprocess_exec(*standin)
        await process.wait()
        tally.add()

    return noop, spawn


async def arq_worker(url: str, standin: list[str], handoff: Path | None) -> None:
    arq_connections = importlib.import_module("arq.connections")
    arq_worker_mod = importlib.import_module("arq.worker")
    redis_mod = importlib.import_module("redis.asyncio")
    client = redis_mod.Redis.from_url(url)
    tally = Tally(client)
    noop, spawn = job_functions(tally, standin, handoff)
    worker = arq_worker_mod.Worker(
        functions=[
            arq_worker_mod.func(noop, name="noop"),
            arq_worker_mod.func(spawn, name="spawn"),
        ],
        redis_settings=arq_connections.RedisSettings.from_dsn(url),
        handle_signals=False,
    )
    await _serve(client, tally, worker.async_run(), worker.close)


async def saq_worker(url: str, standin: list[str], handoff: Path | None) -> None:
    saq = importlib.import_module("saq")
    redis_mod = importlib.import_module("redis.asyncio")
    client = redis_mod.Redis.from_url(url)
    tally = Tally(client)
    noop, spawn = job_functions(tally, standin, handoff)
    noop.__qualname__ = "noop"
    spawn.__qualname__ = "spawn"
    queue = saq.Queue.from_url(url)
    await queue.connect()
    worker = saq.Worker(queue, functions=[noop, spawn])
    worker.SIGNALS = []  # we handle SIGTERM ourselves
    await _serve(client, tally, worker.start(), worker.stop)


async def _serve(client: Any, tally: Tally, running: Any, close: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.ensure_future(running)
    publisher = asyncio.ensure_future(tally.publish_forever())
    await client.incr(READY_KEY)
    await stop.wait()
    publisher.cancel()
    await close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.aclose()


async def _enqueuer(system: str, url: str) -> tuple[Any, Any]:
    """(enqueue(function_name) coroutine factory, close)."""
    if system == "arq":
        arq = importlib.import_module("arq")
        arq_connections = importlib.import_module("arq.connections")
        pool = await arq.create_pool(arq_connections.RedisSettings.from_dsn(url))
        return (lambda name: pool.enqueue_job(name)), pool.aclose
    saq = importlib.import_module("saq")
    queue = saq.Queue.from_url(url)
    await queue.connect()
    return (lambda name: queue.enqueue(name)), queue.disconnect


async def produce(system: str, url: str, count: int, concurrency: int) -> dict[str, float]:
    enqueue, close = await _enqueuer(system, url)
    remaining = iter(range(count))

    async def lane() -> None:
        for _ in remaining:
            await enqueue("noop")

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    await close()
    return {"count": count, "seconds": seconds}


async def latency(system: str, url: str, count: int, log: Path) -> dict[str, Any]:
    """Sequential spawn jobs; the stand-in appends its start time to `log`, one line per job."""
    enqueue, close = await _enqueuer(system, url)
    sent: list[float] = []
    for number in range(1, count + 1):
        await asyncio.sleep(random.uniform(0.005, 0.02))
        sent.append(time.time())
        await enqueue("spawn")
        deadline = time.monotonic() + 10
        while _lines(log) < number:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system}: job {number} did not start within 10 s")
            await asyncio.sleep(0.0005)
        await asyncio.sleep(0.01)  # let the job finish before the next one
    await close()
    return {"sent": sent}


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--standin", default='["true"]', help="JSON argv")
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--handoff", type=Path, default=None, help="log each job's start time")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    system, _, role = args.role.partition("-")
    if system not in ("arq", "saq") or role not in ("worker", "produce", "latency"):
        parser.error(f"unknown role {args.role}")
    result: dict[str, Any] = {}
    if role == "worker":
        runner = arq_worker if system == "arq" else saq_worker
        asyncio.run(runner(args.redis, json.loads(args.standin), args.handoff))
    elif role == "produce":
        result = asyncio.run(produce(system, args.redis, args.count, args.concurrency))
    else:
        assert args.log is not None
        result = asyncio.run(latency(system, args.redis, args.count, args.log))
    if args.json is not None:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
