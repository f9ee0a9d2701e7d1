"""The worker registry: each live worker renews a registration that lapses if it stops."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from instruct_lab_bot.adapters.redis.base import RedisPart
from instruct_lab_bot.adapters.redis.keys import WORKERS_KEY, worker_key
from instruct_lab_bot.core.command_table import CAPABILITIES, worker_capabilities


class WorkerRegistry(RedisPart):
    async def register_worker(self, name: str, info: Mapping[str, str], ttl: float) -> None:
        """Announce or renew a live worker; the registration lapses `ttl` after the last call."""
        now = time.time()
        fields: list[str] = []
        for key, value in {**info, "heartbeat_at": repr(now)}.items():
            fields += [key, value]
        await self._script("register_worker")(
            keys=[worker_key(name), WORKERS_KEY],
            args=[name, repr(now), int(ttl * 1000), repr(now - max(ttl, 3600)), *fields],
        )

    async def unregister_worker(self, name: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(worker_key(name))
            pipe.zrem(WORKERS_KEY, name)
            await pipe.execute()

    async def live_workers(self) -> list[dict[str, str]]:
        """Registrations that have not lapsed, newest heartbeat first."""
        names: Any = await self.redis.zrevrange(WORKERS_KEY, 0, 999)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(worker_key(name))
            found: Any = await pipe.execute()
        return [dict(info) for info in found if info]

    async def live_capabilities(self) -> dict[str, int]:
        """How many live workers each capability (pool) has; 0 for a pool nobody serves."""
        counts = dict.fromkeys(CAPABILITIES, 0)
        for info in await self.live_workers():
            for capability in worker_capabilities(info):
                counts[capability] = counts.get(capability, 0) + 1
        return counts
