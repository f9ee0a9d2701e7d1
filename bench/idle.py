"""Idle footprint: `instruct-lab-bot server` and `instruct-lab-bot worker` doing nothing.

Both start as real processes with settings in their environment (a throwaway RSA key as the
App key, our own Redis, no webhook, no job). After they are up, a window of ~10 s: RSS at the
end, CPU time used during the window (utime + stime from /proc/PID/stat), and the Redis
commands the two issued (INFO commandstats), which shows any polling.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import redis

from .common import (
    Row,
    bot_argv,
    bot_env,
    figure_main,
    free_port,
    redis_server,
    running,
    tail,
    verdict,
    wait_http,
)

RSS_TARGET_MB = 80.0
CPU_TARGET = 0.01  # "~0 %": under 1 % of one core


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def commands(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, dict[str, int]] = cast(Any, client).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def measure(quick: bool) -> list[Row]:
    window = 1.0 if quick else 10.0
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ilab-bench-idle-")))
        redis_url = stack.enter_context(redis_server())
        port = free_port()
        env = bot_env(redis_url, work, port, os.urandom(32).hex())
        log = work / "server.log"
        server = stack.enter_context(running(bot_argv("server"), env=env, cwd=work, log=log))
        wlog = work / "worker.log"
        worker = stack.enter_context(running(bot_argv("worker"), env=env, cwd=work, log=wlog))
        wait_http(f"http://127.0.0.1:{port}/readyz", server)
        await asyncio.sleep(2.0)  # the worker has registered and is blocked in its first read
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited: {tail(wlog)}")
        client = redis.Redis.from_url(redis_url)
        before = {p.pid: cpu_seconds(p.pid) for p in (server, worker)}
        calls_before = commands(client)
        started = time.monotonic()
        await asyncio.sleep(window)
        elapsed = time.monotonic() - started
        used = {p.pid: cpu_seconds(p.pid) - before[p.pid] for p in (server, worker)}
        rss = {p.pid: rss_mb(p.pid) for p in (server, worker)}
        calls_after = commands(client)
        client.close()
    issued = {k: v - calls_before.get(k, 0) for k, v in calls_after.items()}
    issued.pop("info", None)  # ours, for these numbers
    busiest = ", ".join(
        f"{name} {count / elapsed:.1f}/s"
        for name, count in sorted(issued.items(), key=lambda kv: -kv[1])[:4]
        if count
    )
    out = []
    for name, process in (("server (with dispatcher)", server), ("worker", worker)):
        cpu = used[process.pid] / elapsed
        out.append(
            Row(
                f"idle {name}: RSS (MB) / CPU",
                f"{rss[process.pid]:.1f} MB / {cpu:.2%}",
                "—",
                "—",
                f"< {RSS_TARGET_MB:.0f} MB / ~0 %",
                verdict(rss[process.pid] < RSS_TARGET_MB and cpu < CPU_TARGET),
                f"over {elapsed:.1f} s idle",
            )
        )
    total = sum(issued.values()) / elapsed
    out.append(
        Row(
            "idle server + worker: Redis commands/s",
            f"{total:.1f}",
            "—",
            "—",
            "no busy polling",
            verdict(total < 20),
            busiest,
        )
    )
    return out


if __name__ == "__main__":
    figure_main(measure, __doc__)
