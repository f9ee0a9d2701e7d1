"""One chaos run: the world, the fleet, the load and the faults together, then the checks.

`python -m testkit.chaos` (`make chaos`) runs the full size; tests/test_chaos.py a short one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from instruct_lab_bot.adapters.redis.queue import Queue

from ..github_emulator import GitHubEmulator, generate_app_key
from ..openapi import OpenAPISpec
from ..proxy import RoundRobinProxy
from ..testdata import ensure_testdata
from .checks import GUARANTEES, Verdict, settle, verify
from .faults import FAULT_KINDS, FaultDriver, FaultTiming
from .fleet import Fleet, FleetConfig, bot_env, chaos_settings
from .load import DeliveryLog, deliver_all
from .redis_backends import redis_backend
from .world import FIRST_PR, build_remote, generate_commands, publish_pulls


@dataclass(frozen=True)
class ChaosConfig:
    commands: int = 200
    duration: float = 60.0  # seconds over which the commands are sent
    seed: int = field(default_factory=lambda: random.SystemRandom().randrange(1 << 31))
    fleet: FleetConfig = field(default_factory=FleetConfig)
    timing: FaultTiming = field(default_factory=FaultTiming)
    kinds: tuple[str, ...] = FAULT_KINDS
    settle_limit: float = 600.0  # only bounds a run that would never settle


@dataclass
class ChaosReport:
    config: ChaosConfig
    faults: Counter[str]
    deliveries: DeliveryLog
    verdict: Verdict
    load_seconds: float
    settle_seconds: float
    crashed: list[str]  # processes that died without being killed

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.deliveries.failed and not self.crashed

    def lines(self) -> list[str]:
        c = self.config
        out = [
            f"chaos run: seed {c.seed}, {c.commands} commands over {c.duration:.0f} s, "
            f"{c.fleet.servers} servers, {c.fleet.workers} workers x {c.fleet.concurrency}, "
            f"Redis: {c.fleet.redis}",
            f"load sent in {self.load_seconds:.1f} s; settled {self.settle_seconds:.1f} s later",
            "faults injected:",
            *(f"  {n:>4}  {kind}" for kind, n in self.faults.items()),
            f"deliveries: {len(self.deliveries.attempts)} sent, "
            f"{self.deliveries.redeliveries} redeliveries, "
            f"{len(self.deliveries.failed)} never accepted",
            "  answers: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(self.deliveries.statuses.items())),
            "job attempts: "
            + ", ".join(f"{n} attempt(s) x{v}" for n, v in sorted(self.verdict.attempts.items())),
            "guarantees checked:",
            *(f"  {self.verdict.held[g]:>4}/{self.verdict.checked[g]:<4} {g}" for g in GUARANTEES),
        ]
        if self.crashed:
            out.append(f"processes that died on their own: {', '.join(self.crashed)}")
        out += [f"  PROBLEM {p}" for p in self.verdict.problems]
        out.append("RESULT: " + ("all guarantees held" if self.ok else "FAILED"))
        return out


async def run_chaos(config: ChaosConfig, var: Path) -> ChaosReport:
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    rng = random.Random(config.seed)  # noqa: S311 - seeded on purpose: a run can be replayed
    paths = ensure_testdata(Path.cwd() / ".cache")
    key = generate_app_key()
    spec = OpenAPISpec.load(paths.openapi)
    remote = await asyncio.to_thread(build_remote, var)
    secret = secrets.token_hex(32)
    numbers = list(range(FIRST_PR, FIRST_PR + config.commands))
    async with (
        GitHubEmulator(spec, app_id=key.app_id, public_key_pem=key.public_key_pem) as gh,
        _fleet(var, config.fleet) as fleet,
    ):
        heads = await asyncio.to_thread(publish_pulls, gh, remote, config.commands)
        deliveries = generate_commands(gh, paths, numbers, secret)
        async with RoundRobinProxy() as proxy:
            env = bot_env(
                {
                    "GITHUB_APP_ID": str(key.app_id),
                    "GITHUB_PRIVATE_KEY": key.private_key_pem,
                    "WEBHOOK_SECRET": secret,
                    **fleet.redis.settings,
                    **chaos_settings(
                        redis_url=fleet.redis.url,
                        github_url=gh.url,
                        git_url=remote.git_url_base,
                        public_url=proxy.url,
                        var=var,
                    ),
                }
            )
            env["ILAB_STANDIN_DURATION"] = str(config.fleet.standin_duration)
            _populate(fleet, config.fleet, env, proxy)
            fleet.start_all()
            await _serving(fleet)  # traffic comes once the deployment is up, as in production
            driver = FaultDriver(fleet, gh, rng, config.timing, config.kinds)
            stop = asyncio.Event()
            faults = asyncio.create_task(driver.run(stop))
            started = time.monotonic()
            log = await deliver_all(proxy.url + "/api/github/hook", deliveries, config.duration)
            load_seconds = time.monotonic() - started
            stop.set()
            await faults
            crashed = fleet.crashed()
            fleet.start_all()  # a process that died on its own is reported, then replaced
            verdict, settle_seconds = await _judge(gh, fleet, heads, numbers, config)
    return ChaosReport(config, driver.injected, log, verdict, load_seconds, settle_seconds, crashed)


def _populate(
    fleet: Fleet, config: FleetConfig, env: dict[str, str], proxy: RoundRobinProxy
) -> None:
    fleet.add_servers(config.servers, env)
    fleet.add_workers(config.workers, config.concurrency, env)
    proxy.set_backends([("127.0.0.1", p) for p in fleet.server_ports])


async def _judge(
    gh: GitHubEmulator, fleet: Fleet, heads: dict[int, str], numbers: list[int], config: ChaosConfig
) -> tuple[Verdict, float]:
    queue = Queue.from_url(fleet.redis.url)
    try:
        settle_seconds = await settle(gh, queue, numbers, config.settle_limit)
        return await verify(gh, queue, heads, numbers), settle_seconds
    finally:
        await queue.aclose()


async def _serving(fleet: Fleet, limit: float = 120.0) -> None:
    """Wait until every server answers /healthz (`limit` bounds one that never starts)."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(limit):
        for port in fleet.server_ports:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _fleet(var: Path, config: FleetConfig) -> AsyncIterator[Fleet]:
    redis = redis_backend(config.redis, var / "redis")
    await asyncio.to_thread(redis.start)
    fleet = Fleet(var, redis)
    try:
        yield fleet
    finally:
        await asyncio.to_thread(fleet.stop_all)
        redis.stop()
