"""The fault driver: at seeded random moments, crash a server or a worker (`kill -9`, started
again a moment later), crash Redis (restarted from its append-only file) or fail it over, or
make GitHub answer 502s or secondary rate limits for a stretch. Faults overlap; each kind
comes once per round (seeded order), and at least once in any run."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

from ..github_emulator import GitHubEmulator, Injection
from .fleet import BotProcess, Fleet

KILL_SERVER = "kill -9 server"
KILL_WORKER = "kill -9 worker"
GITHUB_502 = "github 502 stretch"
GITHUB_SECONDARY = "github 403 secondary rate limit stretch"
REDIS = "redis"  # the fleet's Redis backend names the fault (restart or failover)
FAULT_KINDS = (KILL_SERVER, KILL_WORKER, REDIS, GITHUB_502, GITHUB_SECONDARY)


@dataclass(frozen=True)
class FaultTiming:
    """Seconds between fault starts, and how long each fault lasts (uniform ranges)."""

    every: tuple[float, float] = (1.0, 3.0)
    process_down: tuple[float, float] = (0.3, 2.0)
    redis_down: tuple[float, float] = (0.3, 1.5)
    github_stretch: tuple[float, float] = (1.0, 4.0)


@dataclass
class FaultDriver:
    fleet: Fleet
    gh: GitHubEmulator
    rng: random.Random
    timing: FaultTiming = field(default_factory=FaultTiming)
    kinds: tuple[str, ...] = FAULT_KINDS
    injected: Counter[str] = field(default_factory=Counter)
    _busy: set[str] = field(default_factory=set)  # targets with a fault in progress
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        """Start a fault every `timing.every` until `stop`; then let those in flight end (every
        process started again, Redis up, GitHub answering)."""
        actions: dict[str, Callable[[], Coroutine[None, None, None]]] = {
            KILL_SERVER: lambda: self._crash(self.fleet.servers, KILL_SERVER),
            KILL_WORKER: lambda: self._crash(self.fleet.workers, KILL_WORKER),
            REDIS: self._redis,
            GITHUB_502: lambda: self._github(GITHUB_502, lambda: self.gh.outage(502)),
            GITHUB_SECONDARY: lambda: self._github(GITHUB_SECONDARY, self.gh.secondary_rate_limit),
        }
        deck: list[str] = []
        while not await _stopped_within(stop, self.rng.uniform(*self.timing.every)):
            if not deck:  # every kind once per round, in a seeded order
                deck = self.rng.sample(self.kinds, len(self.kinds))
            task = asyncio.create_task(actions[deck.pop()]())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.gather(*self._tasks)
        for kind in self.kinds:  # a short run still sees each kind once
            if not self.injected[self.name(kind)]:
                await actions[kind]()

    def name(self, kind: str) -> str:
        """What the report calls a kind (the Redis fault is the backend's)."""
        return self.fleet.redis.fault_kind if kind == REDIS else kind

    async def _crash(self, group: list[BotProcess], kind: str) -> None:
        candidates = [p for p in group if p.alive and p.name not in self._busy]
        if not candidates:
            return
        victim = self.rng.choice(candidates)
        self._busy.add(victim.name)
        try:
            victim.kill9()
            self.injected[kind] += 1
            await asyncio.sleep(self.rng.uniform(*self.timing.process_down))
            victim.start()
        finally:
            self._busy.discard(victim.name)

    async def _redis(self) -> None:
        if "redis" in self._busy:
            return
        self._busy.add("redis")
        try:
            self.injected[self.fleet.redis.fault_kind] += 1
            await self.fleet.redis.fault(self.rng.uniform(*self.timing.redis_down))
        finally:
            self._busy.discard("redis")

    async def _github(self, kind: str, begin: Callable[[], Injection]) -> None:
        if "github" in self._busy:
            return
        self._busy.add("github")
        injection = begin()
        self.injected[kind] += 1
        try:
            await asyncio.sleep(self.rng.uniform(*self.timing.github_stretch))
        finally:
            injection.lift()
            self._busy.discard("github")


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
