"""`make burst`: a burst of webhooks (default 1,000/s for 30 s, half `generate` commands, half
plain comments, spread over 50 PRs; `--pulls 1`: all on one) into 2 `instruct-lab-bot server`
processes with their dispatchers, and `--workers` worker processes running the stand-in.

Four open-loop load generators (`bench.loadgen`, each its own process: commands and plain
comments into each server) measure every answer from its scheduled send time. Afterwards:
every accepted command delivery must be stored exactly once (events stream length = 202
answers), no 5xx (Redis stays up), the p99 of the answers; the dispatchers' lag as their
`/metrics` showed it during the burst, and the time to drain after the burst: the events
stream handled and (with workers) every job in a final state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from instruct_lab_bot.adapters.redis.keys import DISPATCH_GROUP, EVENTS_STREAM
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import sign
from testkit.chaos.world import FIRST_PR, REVIEWER, build_remote, publish_pulls
from testkit.github_emulator import GitHubEmulator, generate_app_key
from testkit.openapi import OpenAPISpec
from testkit.payloads import pr_comment
from testkit.testdata import ensure_testdata, load_webhook_example

from .common import CACHE, ROOT, bot_argv, bot_env, free_port, redis_server, spawn, stop, wait_http
from .ingest import COMMENT_ID, HOOK
from .loadgen import LoadResult, load_result

LAG = re.compile(r'^instruct_lab_bot_queue_(lag|pending)\{stream="events"\} (\S+)$', re.M)


@dataclass
class BurstResult:
    rate: float
    seconds: float
    loads: dict[str, LoadResult]
    stored: int  # entries in the events stream
    drain_seconds: float  # from the last request until the dispatchers had caught up
    metrics_max_backlog: float  # highest lag + pending any server's /metrics showed
    samples: list[tuple[float, int]] = field(default_factory=list)  # (t, backlog in Redis)
    left: int = 0  # backlog still there when the drain limit was reached
    dispatch_rate: float = 0.0  # events/s dispatched meanwhile (when not drained)
    pulls: int = 1  # PRs the comments were spread over
    jobs: dict[str, int] = field(default_factory=dict)  # jobs by state at the end
    github_calls: dict[str, int] = field(default_factory=dict)  # "METHOD route" -> count
    live_left: int = 0  # jobs still queued or running when the drain limit was reached
    events_drain_seconds: float = math.inf  # from the last request until every event was handled

    @property
    def accepted_commands(self) -> int:
        return sum(r.statuses.get("202", 0) for k, r in self.loads.items() if "command" in k)

    @property
    def stored_once(self) -> bool:
        """Every accepted command stored, nothing stored twice: the events stream holds the
        202s plus at most the commands whose answer had not come back when a generator
        stopped waiting (stored, answered too late to count)."""
        commands = [r for k, r in self.loads.items() if "command" in k]
        unanswered = int(self.rate / 4 * self.seconds) * len(commands) - sum(
            r.requests + r.errors for r in commands
        )
        return self.accepted_commands <= self.stored <= self.accepted_commands + unanswered

    @property
    def sent(self) -> int:
        return sum(r.requests + r.errors for r in self.loads.values())

    @property
    def server_errors(self) -> int:
        return sum(n for r in self.loads.values() for s, n in r.statuses.items() if s[0] == "5")

    def lines(self) -> list[str]:
        p99 = max(r.p99_ms for r in self.loads.values())
        achieved = self.sent / max(r.seconds for r in self.loads.values())
        asked = int(self.rate / 4 * self.seconds) * len(self.loads)
        return [
            f"burst: asked {self.rate:.0f}/s for {self.seconds:.0f} s ({asked}); answered "
            f"{self.sent} ({achieved:.0f}/s); {asked - self.sent} still unanswered when the "
            "generators gave up (30 s after their last send)",
            *(
                f"  {k}: {r.statuses} errors {r.errors} p50 {r.p50_ms:.1f} ms p99 "
                f"{r.p99_ms:.1f} ms max {r.max_ms:.1f} ms"
                for k, r in self.loads.items()
            ),
            f"p99 of the answers (worst generator): {p99:.1f} ms; 5xx: {self.server_errors}",
            f"command deliveries accepted (202): {self.accepted_commands}; "
            f"events stored: {self.stored} -> " + ("each once" if self.stored_once else "MISMATCH"),
            f"dispatcher backlog seen in /metrics: max {self.metrics_max_backlog:.0f}; "
            + (
                f"drained {self.drain_seconds:.1f} s after the burst"
                if math.isfinite(self.drain_seconds)
                else f"{self.left} events and {self.live_left} live jobs left after the drain "
                f"limit ({self.dispatch_rate:.1f} events/s)"
            ),
            f"events handled {self.events_drain_seconds:.1f} s after the burst; "
            f"jobs ({self.pulls} PRs): {self.jobs}",
            f"GitHub calls: {sum(self.github_calls.values())} "
            f"({sum(self.github_calls.values()) / max(1, self.accepted_commands):.2f} per "
            f"accepted command): {self.github_calls}",
        ]


TEXTS = {
    "command": f"Looks ready.\n\n@{Settings().username} generate",
    "plain": "Thanks, looks right to me. Merging once CI is green.",
}


@dataclass(frozen=True)
class BurstConfig:
    rate: float = 1000.0  # webhooks per second, in all
    seconds: float = 30.0
    writes_per_minute: int = 0  # > 0: replaces the bot's GitHub write budget
    drain_limit: float = 600.0  # bounds the wait for the dispatchers and workers to catch up
    pulls: int = 50  # open PRs the comments are spread over (round robin)
    workers: int = 0  # worker processes (2 jobs each, the 1 s stand-in); 0: jobs stay queued
    quota: int = 5000  # calls an hour the installation may make (GitHub's: 5,000; more on GHEC)


def write_body(work: Path, secret: str, kind: str, comment_id: int) -> tuple[Path, str]:
    """A command or a plain comment on our PR, from GitHub's own example: (file, signature).
    `bench.loadgen --vary-comment` then gives each request its own id from `comment_id` on."""
    example = load_webhook_example(ensure_testdata(CACHE), "issue_comment", action="created")
    payload = pr_comment(
        example, body=TEXTS[kind], pr_number=FIRST_PR, comment_id=comment_id, login=REVIEWER
    )
    data = json.dumps(payload, separators=(",", ":")).encode()
    path = work / f"{kind}-{comment_id}.json"
    path.write_bytes(data)
    return path, sign(data, secret.encode())


@dataclass(frozen=True)
class Load:
    url: str
    body: tuple[Path, str]  # file, signature
    rate: float
    out: Path
    first_comment: int
    pulls: int = 1


async def load(spec: Load, seconds: float, secret: str) -> None:
    """One `bench.loadgen` process; its requests get comment ids from `spec.first_comment` on
    (one range per generator: the bot stores a comment once, whoever delivers it)."""
    url, body, rate, out = spec.url, spec.body, spec.rate, spec.out
    argv = [sys.executable, "-m", "bench.loadgen", url, str(body[0]), "--event"]
    argv += ["issue_comment", "--signature", body[1], "--mode", "rate", "--rate", str(rate)]
    argv += ["--duration", str(seconds), "--connections", "16", "--json", str(out)]
    argv += ["--vary-comment", str(spec.first_comment), "--vary-pr", str(spec.pulls)]
    env = {**os.environ, "LOADGEN_WEBHOOK_SECRET": secret}
    process = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, env=env)
    if await process.wait() != 0:
        raise RuntimeError(f"loadgen failed: {argv}")


async def backlog_from_metrics(session: aiohttp.ClientSession, base: str) -> float:
    try:
        async with session.get(base + "/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return 0.0
    return sum(float(value) for _kind, value in LAG.findall(text))


async def backlog(queue: Queue) -> int:
    stats = await queue.stream_stats(EVENTS_STREAM, DISPATCH_GROUP)
    return stats.lag + stats.pending


async def live_jobs(queue: Queue) -> tuple[int, dict[str, int]]:
    """(jobs still queued or running, every job's count by state)."""
    jobs = await queue.get_jobs(await queue.recent_job_ids(count=1_000_000))
    states = Counter(str(job.state) for job in jobs)
    return sum(not job.state.terminal for job in jobs), dict(states)


async def run_burst(config: BurstConfig, work: Path) -> BurstResult:
    """`writes_per_minute` > 0 replaces the bot's GitHub write budget (80 a minute per
    installation: every command here is on one installation, so it paces the dispatchers)."""
    secret = os.urandom(32).hex()
    key = generate_app_key()
    spec = OpenAPISpec.load(ensure_testdata(CACHE).openapi)
    remote = build_remote(work)
    with redis_server() as redis_url:
        async with GitHubEmulator(spec, app_id=key.app_id, public_key_pem=key.public_key_pem) as gh:
            publish_pulls(gh, remote, config.pulls)
            gh.rate_limit = config.quota
            extra = {
                "GITHUB_APP_ID": str(key.app_id),
                "GITHUB_PRIVATE_KEY": key.private_key_pem,
                "GITHUB_API_URL": gh.url,
                "GITHUB_GIT_URL": remote.git_url_base,
                "RECONCILE_INTERVAL": "off",
            }
            if config.writes_per_minute > 0:
                extra["GITHUB_WRITES_PER_MINUTE"] = str(config.writes_per_minute)
            ports = [free_port(), free_port()]
            processes = [
                spawn(
                    bot_argv("server"),
                    env=bot_env(redis_url, work, port, secret, **extra),
                    cwd=work,
                    log=work / f"server-{n}.log",
                )
                for n, port in enumerate(ports)
            ]
            processes += _workers(config.workers, redis_url, work, secret, extra)
            try:
                for port, process in zip(ports, processes, strict=False):
                    await asyncio.to_thread(
                        wait_http, f"http://127.0.0.1:{port}/healthz", process, 180
                    )
                result = await _burst(ports, redis_url, config, work, secret)
            finally:
                for process in processes:
                    stop(process)
            result.github_calls = dict(Counter(f"{c.method} {c.route}" for c in gh.calls))
            return result
    raise AssertionError("unreachable")


def _workers(
    count: int, redis_url: str, work: Path, secret: str, extra: dict[str, str]
) -> list[subprocess.Popen[bytes]]:
    """`count` worker processes (2 jobs each), each with its own work folder and the 1 s
    stand-in for `ilab`."""
    argv = bot_argv("worker", "--concurrency", "2", "--metrics-port", "0")
    started = []
    for n in range(count):
        env = bot_env(redis_url, work, free_port(), secret, **extra)
        env |= {"ILAB_BOT_WORK_DIR": str(work / f"worker-{n}"), "ILAB_STANDIN_DURATION": "1"}
        started.append(spawn(argv, env=env, cwd=work, log=work / f"worker-{n}.log"))
    return started


async def _burst(
    ports: list[int], redis_url: str, config: BurstConfig, work: Path, secret: str
) -> BurstResult:
    rate, seconds = config.rate, config.seconds
    loads = {}
    for k, kind in enumerate(TEXTS):
        for n, port in enumerate(ports):
            first = COMMENT_ID * (1 + 2 * k + n)  # one id range per generator, same width
            loads[f"{kind}->server-{n}"] = Load(
                f"http://127.0.0.1:{port}{HOOK}",
                write_body(work, secret, kind, first),
                rate / 4,
                work / f"load-{kind}-{n}.json",
                first,
                config.pulls,
            )
    queue = Queue.from_url(redis_url)
    result = BurstResult(rate, seconds, {}, 0, 0.0, 0.0, pulls=config.pulls)
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        sampler = asyncio.create_task(_sample(session, ports, queue, result, started))
        await asyncio.gather(*(load(spec, seconds, secret) for spec in loads.values()))
        await _drain(queue, result, config)
        sampler.cancel()
    result.loads = {name: load_result(spec.out) for name, spec in loads.items()}
    result.stored = int(await queue.redis.xlen(EVENTS_STREAM))
    result.jobs = (await live_jobs(queue))[1]
    await queue.aclose()
    return result


async def _drained(queue: Queue, config: BurstConfig, result: BurstResult, ended: float) -> bool:
    """Every event handled (noted in `result` the first time) and (with workers) every job
    final."""
    if await backlog(queue):
        return False
    if not math.isfinite(result.events_drain_seconds):
        result.events_drain_seconds = time.monotonic() - ended
    return not config.workers or not (await live_jobs(queue))[0]


async def _drain(queue: Queue, result: BurstResult, config: BurstConfig) -> None:
    """Wait until every event is handled and (with workers) every job is final: the time to
    drain; or, past the drain limit, what was left and the dispatch rate meanwhile."""
    ended, at_end = time.monotonic(), await backlog(queue)
    try:
        async with asyncio.timeout(config.drain_limit):
            while True:
                if await _drained(queue, config, result, ended):
                    break
                await asyncio.sleep(0.5)
        result.drain_seconds = time.monotonic() - ended
    except TimeoutError:  # report how far the dispatchers got instead
        result.left = await backlog(queue)
        result.live_left = (await live_jobs(queue))[0]
        result.drain_seconds = math.inf
        result.dispatch_rate = (at_end - result.left) / config.drain_limit


async def _sample(
    session: aiohttp.ClientSession, ports: list[int], queue: Queue, result: BurstResult, t0: float
) -> None:
    while True:
        for port in ports:
            seen = await backlog_from_metrics(session, f"http://127.0.0.1:{port}")
            result.metrics_max_backlog = max(result.metrics_max_backlog, seen)
        result.samples.append((round(time.monotonic() - t0, 1), await backlog(queue)))
        await asyncio.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="webhooks per second, in all")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--drain-limit", type=float, default=600.0, help="seconds")
    parser.add_argument(
        "--writes-per-minute", type=int, default=0, help="GitHub write budget (0: the bot's)"
    )
    parser.add_argument("--pulls", type=int, default=50, help="PRs the comments go to")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2 jobs each)")
    parser.add_argument(
        "--quota", type=int, default=5000, help="GitHub calls an hour for the installation"
    )
    args = parser.parse_args()
    config = BurstConfig(
        args.rate,
        args.seconds,
        args.writes_per_minute,
        args.drain_limit,
        args.pulls,
        args.workers,
        args.quota,
    )
    with tempfile.TemporaryDirectory(prefix="ilab-burst-") as tmp:
        result = asyncio.run(run_burst(config, Path(tmp)))
    print("\n".join(result.lines()))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=1))
    ok = result.server_errors == 0 and result.stored_once
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
