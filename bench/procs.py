"""Starting, gating and reading worker processes of any of the queues (ours, raw, arq, saq)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import redis

from . import baselines
from .common import BENCH_DIR, ROOT, spawn, stop, tail

SYSTEMS = ("ours", "raw", "saq", "arq")
READY_KEY = "bench:ready"
PROGRESS_KEY = "bench:progress"


def python_for(system: str) -> str:
    """arq and saq run in their own venv (installed on first use); ours and raw in ours."""
    if system in ("arq", "saq"):
        return str(baselines.queue_python(system))
    return sys.executable


def worker_argv(
    system: str, redis_url: str, standin: Sequence[str] = (), handoff: Path | None = None
) -> list[str]:
    python = python_for(system)
    if system in ("arq", "saq"):
        argv = [python, str(BENCH_DIR / "queue_baselines.py"), f"{system}-worker"]
    else:
        argv = [python, "-m", "bench.workers", f"{system}-worker"]
    argv += ["--redis", redis_url]
    if standin:
        argv += ["--standin", json.dumps(list(standin))]
    if handoff is not None:
        argv += ["--handoff", str(handoff)]
    return argv


def producer_argv(system: str, redis_url: str, count: int, out: Path) -> list[str]:
    python = python_for(system)
    if system in ("arq", "saq"):
        argv = [python, str(BENCH_DIR / "queue_baselines.py"), f"{system}-produce"]
    else:
        argv = [python, "-m", "bench.workers", f"{system}-produce"]
    return [*argv, "--redis", redis_url, "--count", str(count), "--json", str(out)]


def run_checked(argv: Sequence[str], log: Path, timeout: float) -> None:
    with log.open("ab") as out:
        done = subprocess.run(
            list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} {argv[2]} failed: {tail(log, 3)}")


@contextmanager
def workers(
    system: str,
    count: int,
    redis_url: str,
    log: Path,
    standin: Sequence[str] = (),
    handoff: Path | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` worker processes, returned once each has said it is ready."""
    client: Any = redis.Redis.from_url(redis_url)  # redis-py 5 types replies as Awaitable | Any
    argv = worker_argv(system, redis_url, standin, handoff)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [_spawn_in_root(argv, env, log) for _ in range(count)]
    try:
        deadline = time.monotonic() + 60
        while int(client.get(READY_KEY) or 0) < count:
            dead = [p for p in processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{system} worker did not start: {tail(log, 3)}")
            time.sleep(0.02)
        time.sleep(0.3)  # let them settle into their blocking reads / polls
        yield processes
    finally:
        for process in processes:
            resume(process)
            stop(process)
        client.close()


def _spawn_in_root(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return spawn(argv, env=env, cwd=ROOT, log=log)


def pause(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGSTOP)


def resume(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)


def progress(client: redis.Redis) -> tuple[int, float]:
    """Jobs done by all workers, and the time the last one finished."""
    raw: dict[bytes, bytes] = cast(Any, client).hgetall(PROGRESS_KEY)
    done, last = 0, 0.0
    for value in raw.values():
        count, stamp = value.split()
        done += int(count)
        last = max(last, float(stamp))
    return done, last
