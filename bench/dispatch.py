"""Dispatch latency: enqueue → the `ilab` subprocess has started, p50/p99.

The stand-in is `sh -c 'date +%s.%N >> LOG'`: it appends the wall-clock time at which it runs,
and ignores the `data generate …` arguments the worker adds. Jobs go one at a time (a random
5–20 ms gap, so nothing is in phase with a poll loop) into an idle worker process. Two
latencies from the time taken just before the enqueue call: to the job body starting (it
appends its own start time: the queue's hand-off) and to the stand-in running (hand-off + the
spawn, whose floor is measured alone).

- spawn floor: this process spawns the same stand-in itself (no queue at all);
- ours: the dispatcher's Redis bookkeeping, XADD, then the real `Worker` process (XREADGROUP
  BLOCK, `get_job`, `start_job` Lua, lease heartbeat task) spawning through `run_streaming`;
- saq 0.26 / arq 0.28 (defaults): `enqueue` of a job whose function spawns the stand-in with
  `asyncio.create_subprocess_exec`, from a client process, into one worker process.

And the whole path as a contributor sees it: the real server, dispatcher and worker (one
event loop, the test harness) against the GitHub sandbox and a local git remote. From the
webhook's stored event (its stream entry id, ms resolution) and from the job's XADD to `ilab`
started, so the dispatcher's three GitHub calls, the worker's check-run update and the git
checkout are inside. On GitHub each of those calls is a network round trip, so this is a floor.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import redis

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.webhooks import sign

from . import baselines
from .common import BENCH_DIR, Row, figure_main, percentile, ratio, redis_server, verdict
from .procs import python_for, run_checked, workers
from .workers import bench_job, enqueue_like_dispatcher

# Answers the worker's start-up `ilab --version` probe; each job appends when it started.
SCRIPT = 'if [ "$1" = --version ]; then echo "ilab, version 0.26.1"; else date +%s.%N >> "$0"; fi'
P50_TARGET = 0.001
P99_TARGET = 0.005


def standin(log: Path) -> list[str]:
    return ["/bin/sh", "-c", SCRIPT, str(log)]


def started_times(log: Path) -> list[float]:
    try:
        return [float(line) for line in log.read_text().split()]
    except FileNotFoundError:
        return []


async def _wait_lines(log: Path, count: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while len(started_times(log)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stand-in did not start job {count} within {within:.0f}s")
        await asyncio.sleep(0.0005)


async def spawn_floor(work: Path, samples: int) -> list[float]:
    log = work / "floor.log"
    sent = []
    for _ in range(samples):
        sent.append(time.time())
        process = await asyncio.create_subprocess_exec(*standin(log))
        await process.wait()
        await asyncio.sleep(random.uniform(0.005, 0.02))
    return [s - t for t, s in zip(sent, started_times(log), strict=True)]


Latencies = dict[str, list[float]]  # "job": enqueue → job body started; "ilab": → stand-in ran


def _latencies(sent: list[float], handoff: Path, log: Path) -> Latencies:
    return {
        "job": [s - t for t, s in zip(sent, started_times(handoff), strict=True)],
        "ilab": [s - t for t, s in zip(sent, started_times(log), strict=True)],
    }


async def ours(redis_url: str, work: Path, samples: int) -> Latencies:
    log = work / "ours.log"
    handoff = work / "ours.handoff"
    redis.Redis.from_url(redis_url).flushall()
    wlog = work / "ours-worker.log"
    with workers("ours", 1, redis_url, wlog, standin=standin(log), handoff=handoff):
        queue = Queue.from_url(redis_url)
        await queue.ensure_groups()
        sent = []
        try:
            for number in range(1, samples + 1):
                await asyncio.sleep(random.uniform(0.005, 0.02))
                sent.append(await enqueue_like_dispatcher(queue, bench_job(number)))
                await _wait_lines(log, number)
                await asyncio.sleep(0.01)  # let the job finish before the next one
        finally:
            await queue.aclose()
    return _latencies(sent, handoff, log)


def baseline(system: str, redis_url: str, work: Path, samples: int) -> Latencies:
    log = work / f"{system}.log"
    handoff = work / f"{system}.handoff"
    out = work / f"{system}.json"
    redis.Redis.from_url(redis_url).flushall()
    wlog = work / f"{system}-worker.log"
    with workers(system, 1, redis_url, wlog, standin=standin(log), handoff=handoff):
        argv = [
            python_for(system),
            str(BENCH_DIR / "queue_baselines.py"),
            f"{system}-latency",
            "--redis",
            redis_url,
            "--count",
            str(samples),
            "--log",
            str(log),
            "--json",
            str(out),
        ]
        run_checked(argv, wlog, timeout=30 + samples * 2)
    return _latencies(json.loads(out.read_text())["sent"], handoff, log)


async def full_path(work: Path, samples: int) -> tuple[list[float], list[float]]:
    """(event stored → ilab started, job XADD → ilab started) through the real bot."""
    from testkit.demo import reviewer_comment, sandbox
    from testkit.harness import run_bot
    from testkit.testdata import load_webhook_example

    # `ilab` runs in bubblewrap, which gives it a private /tmp: the stand-in's log lies in a
    # folder the sandbox is told to leave writable (SANDBOX_WRITABLE), as an operator would.
    stamps = work / "full-stamps"
    stamps.mkdir()
    log = stamps / "full.log"
    from_event: list[float] = []
    from_job: list[float] = []
    with open(os.devnull, "w") as quiet:  # noqa: PTH123 - the sandbox wants a text stream
        async with (
            sandbox(work / "sandbox", ilab_command=tuple(standin(log)), log_file=quiet) as box,
            run_bot(replace(box.settings, sandbox_writable=(stamps,))) as bot,
            aiohttp.ClientSession() as session,
        ):
            example = load_webhook_example(box.paths, "issue_comment", action="created")
            queue = Queue.from_url(box.settings.redis_url)
            try:
                for number in range(1, samples + 1):
                    if number > 1:
                        await _push_new_head(box, session, bot.webhook_url)
                    body = f"Run {number}, please.\n\n@{box.settings.username} generate"
                    payload = reviewer_comment(box.gh, example, body)
                    entry = await _post(session, bot.webhook_url, payload, box.settings)
                    await _wait_lines(log, number, within=20)
                    started = started_times(log)[-1]
                    job = await _wait_finished(queue, number)
                    from_event.append(started - _entry_time(entry))
                    from_job.append(started - _entry_time(str(job.get("stream_id", "0-0"))))
            finally:
                await queue.aclose()
    return from_event, from_job


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    payload: dict[str, Any],
    settings: Any,
    event: str = "issue_comment",
) -> str:
    data = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(data, settings.webhook_secret.value.encode()),
        "Content-Type": "application/json",
    }
    async with session.post(url, data=data, headers=headers) as response:
        answer = await response.json()
        if response.status != 202:
            raise RuntimeError(f"webhook answered {response.status}: {answer}")
        return str(answer["entry"])


async def _push_new_head(box: Any, session: aiohttp.ClientSession, url: str) -> None:
    """Before each sample but the first: the contributor pushes, and the bot has handled the
    push (its validation check run on the new head completed), so each sample's `generate`
    asks for a head nothing ran on yet (a repeat at a head where `generate` succeeded is
    answered with that job instead), validated as on a busy PR."""
    from testkit.demo import OWNER, REPO, push_new_head
    from testkit.testdata import load_webhook_example

    example = load_webhook_example(box.paths, "pull_request", action="synchronize")
    sha, payload = push_new_head(box, example)
    await _post(session, url, payload, box.settings, event="pull_request")
    gh = box.gh

    def validated() -> bool:
        runs = gh.check_runs(OWNER, REPO, head_sha=sha)
        return any(run["status"] == "completed" for run in runs)

    async with asyncio.timeout(60):
        await gh.wait_for(validated)


async def _wait_finished(queue: Queue, count: int) -> dict[str, str]:
    """The newest job, once `count` jobs reached an end state (the worker is idle again)."""
    from testkit.demo import OWNER, PR, REPO

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ids = await queue.pr_job_ids(RepoRef(OWNER, REPO).pull(PR))
        jobs = await queue.get_jobs(ids)
        if len(jobs) >= count and all(j.state.terminal for j in jobs):
            newest = max(jobs, key=lambda j: j.created_at)
            return {"stream_id": newest.stream_id}
        await asyncio.sleep(0.02)
    raise RuntimeError("the job did not finish within 60 s")


def _entry_time(entry_id: str) -> float:
    return int(entry_id.split("-")[0]) / 1000


def _stats(values: list[float]) -> tuple[float, float]:
    return percentile(values, 50), percentile(values, 99)


async def measure(quick: bool) -> list[Row]:
    sizes = (
        {"floor": 5, "ours": 5, "saq": 5, "arq": 3, "full": 1}
        if quick
        else {
            "floor": 50,
            "ours": 200,
            "saq": 200,
            "arq": 40,
            "full": 12,
        }
    )
    results: dict[str, Latencies] = {}
    problems: dict[str, str] = {}
    full: tuple[list[float], list[float]] | None = None
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ilab-bench-disp-")))
        redis_url = stack.enter_context(redis_server())
        results["floor"] = {"ilab": await spawn_floor(work, sizes["floor"])}
        try:
            results["ours"] = await ours(redis_url, work, sizes["ours"])
        except (RuntimeError, OSError) as exc:
            problems["ours"] = str(exc)[:300]
        for system in ("saq", "arq"):
            try:
                results[system] = baseline(system, redis_url, work, sizes[system])
            except (baselines.Unavailable, RuntimeError, subprocess.SubprocessError) as exc:
                problems[system] = str(exc)[:300]
        try:
            full = await full_path(work, sizes["full"])
        except (RuntimeError, OSError) as exc:
            problems["full"] = f"{type(exc).__name__}: {exc}"[:300]
    return rows(results, problems, full)


def rows(
    results: dict[str, Latencies],
    problems: dict[str, str],
    full: tuple[list[float], list[float]] | None,
) -> list[Row]:
    out: list[Row] = []
    floor50, floor99 = _stats(results["floor"]["ilab"])
    floor = (
        f"spawn floor (sh + date, no queue) p50 {floor50 * 1000:.2f} / p99 {floor99 * 1000:.2f} ms"
    )
    mine = results.get("ours")
    cases = (
        ("job", "saq", "enqueue → job started (queue hand-off)"),
        ("job", "arq", "enqueue → job started (queue hand-off)"),
        ("ilab", "saq", "enqueue → ilab started"),
    )
    for stage, system, what in cases:
        theirs = results.get(system)
        for label, q, goal in (("p50", 50, P50_TARGET), ("p99", 99, P99_TARGET)):
            figure = f"dispatch: {what}, {label}, vs {system}"
            target = f"≤ {goal * 1000:.0f} ms and < {system}"
            if mine is None or theirs is None:
                why = problems.get("ours" if mine is None else system, "not measured")
                out.append(Row.unavailable(figure, why, target))
                continue
            a, b = percentile(mine[stage], q), percentile(theirs[stage], q)
            note = f"{len(mine[stage])}/{len(theirs[stage])} jobs"
            out.append(
                Row(
                    figure,
                    f"{a * 1000:.2f} ms",
                    f"{b * 1000:.2f} ms",
                    ratio(a, b),
                    target,
                    verdict(a <= goal and a < b),
                    note + ("; " + floor if stage == "ilab" else ""),
                )
            )
    if full is None:
        why = problems.get("full", "?")
        out.append(Row.unavailable("dispatch, whole path: webhook → ilab started", why))
        return out
    for label, values in (("webhook stored", full[0]), ("job XADD", full[1])):
        p50, p99 = _stats(values)
        out.append(
            Row(
                f"dispatch, whole path: {label} → ilab started (p50 / p99)",
                f"{p50 * 1000:.1f} / {p99 * 1000:.1f} ms",
                "—",
                "—",
                "—",
                "info",
                f"{len(values)} jobs; real server+dispatcher+worker, GitHub sandbox on loopback, "
                "local git remote; entry ids have 1 ms resolution",
            )
        )
    return out


if __name__ == "__main__":
    if sys.platform != "linux":
        raise SystemExit("the benchmarks read /proc and need Linux")
    figure_main(measure, __doc__)
