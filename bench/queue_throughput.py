"""Queue throughput with full job bookkeeping, no-op command, 1 and 4 worker processes.

For each queue: start the worker processes, wait until they are ready, pause them (SIGSTOP),
let a producer process enqueue N jobs from 10 concurrent tasks (timed: the enqueue rate), then
resume the workers and time until the last job is done (the drain rate, the figure). Pausing
keeps the two phases apart, so the figure is what the workers move, not what one producer
process can feed them on two shared cores.

- ours: producer = the dispatcher's Redis bookkeeping (get_job, create_job, update_job, XADD,
  update_job); worker = the real `Worker.run`/`process`/`finish` (one XREADGROUP for as many
  entries as it has free slots, then per job `start_job` Lua, lease heartbeat task, no-op
  body, HMGET of the run facts, `finish_job` Lua that stores the end state and XACKs, the
  outbox claim; the calls of the jobs of one batch share round trips; no GitHub calls), at
  concurrency 10;
- raw: XADD / XREADGROUP COUNT 1 + XACK, 10 loops per process (no job state at all);
- arq 0.28, saq 0.26: their own enqueue and worker at defaults (10 jobs at once per worker;
  arq also polls every 0.5 s and reads at most 100 job ids per poll, which caps it at ~200
  jobs/s however many workers share the queue).

Two cores: with 4 worker processes each one is CPU-bound, so the 4-process figures show what
the machine moves, not 4 × one process.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis

from . import baselines
from .common import Row, figure_main, ratio, redis_server, verdict
from .procs import SYSTEMS, pause, producer_argv, progress, resume, run_checked, workers

TARGET = 4000.0  # jobs/s per worker process (issue 17)
SAQ_FACTOR = 1.3  # and this many times saq's, in the same run
JOBS = {"ours": 8000, "raw": 20000, "saq": 5000, "arq": 2500}


@dataclass(frozen=True)
class Throughput:
    enqueue_rate: float
    drain_rate: float
    done: int
    count: int


def run_one(system: str, processes: int, count: int, redis_url: str, work: Path) -> Throughput:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    log = work / f"{system}-{processes}.log"
    out = work / f"{system}-{processes}-produce.json"
    with workers(system, processes, redis_url, log) as procs:
        for process in procs:
            pause(process)
        run_checked(producer_argv(system, redis_url, count, out), log, timeout=120)
        produced = json.loads(out.read_text())
        started = time.time()
        for process in procs:
            resume(process)
        deadline = time.monotonic() + 60
        done, last = progress(client)
        while done < count and time.monotonic() < deadline:
            time.sleep(0.02)
            done, last = progress(client)
        if done < count:
            last = time.time()
    client.close()
    return Throughput(
        enqueue_rate=count / produced["seconds"],
        drain_rate=done / max(last - started, 1e-9),
        done=done,
        count=count,
    )


async def measure(quick: bool) -> list[Row]:
    results: dict[tuple[str, int], Throughput] = {}
    problems: dict[str, str] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ilab-bench-queue-")))
        redis_url = stack.enter_context(redis_server())
        for system in SYSTEMS:
            for processes in (1, 4):
                count = 40 if quick else JOBS[system]
                try:
                    results[(system, processes)] = run_one(
                        system, processes, count, redis_url, work
                    )
                except (baselines.Unavailable, RuntimeError, subprocess.SubprocessError) as exc:
                    problems[system] = str(exc)[:300]
                    break
    return rows(results, problems)


def rows(results: dict[tuple[str, int], Throughput], problems: dict[str, str]) -> list[Row]:
    out: list[Row] = []
    for processes in (1, 4):
        ours = results.get(("ours", processes))
        label = f"queue throughput, {processes} worker process{'es' if processes > 1 else ''}"
        goal = TARGET * processes
        target = f"≥ {goal:,.0f} jobs/s ({TARGET:,.0f}/process)"
        for base in ("raw", "saq", "arq"):
            figure = f"{label} (jobs/s) vs {base}"
            theirs = results.get((base, processes))
            factor = SAQ_FACTOR if base == "saq" else 0.0
            goal_text = target + (f" and ≥ {factor} × saq" if factor else "")
            if ours is None or theirs is None:
                why = problems.get("ours" if ours is None else base, "not measured")
                out.append(Row.unavailable(figure, why, goal_text))
                continue
            note = (
                f"enqueue rate (1 producer process): ours {ours.enqueue_rate:,.0f}/s, "
                f"{base} {theirs.enqueue_rate:,.0f}/s"
            )
            if ours.done < ours.count or theirs.done < theirs.count:
                note += f"; timed out: ours {ours.done}/{ours.count}, {base} {theirs.done}"
            out.append(
                Row(
                    figure,
                    f"{ours.drain_rate:,.0f}",
                    f"{theirs.drain_rate:,.0f}",
                    ratio(ours.drain_rate, theirs.drain_rate),
                    goal_text,
                    verdict(
                        ours.drain_rate >= goal and ours.drain_rate >= factor * theirs.drain_rate
                    ),
                    note,
                )
            )
    return out


if __name__ == "__main__":
    figure_main(measure, __doc__)
