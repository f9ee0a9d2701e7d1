"""What every part of the queue shares: one client, how long job records live, and how a
write that must survive a failover waits for replicas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from instruct_lab_bot.adapters.redis.scripts import script
from instruct_lab_bot.adapters.redis.tick import TickBatch, check_replicas
from instruct_lab_bot.core.jobs import bounded_field


class RedisPart:
    """Base of the `Queue`'s parts (mixins): each reads `redis`, `history_ttl` and the
    replica wait, which `Queue.__init__` sets once for all of them."""

    redis: aioredis.Redis
    history_ttl: int
    wait_replicas: int  # 0: never wait
    wait_timeout_ms: int
    _tick: TickBatch  # per-job calls of one event-loop tick share a round trip

    def _script(self, name: str) -> AsyncScript:
        return script(self.redis, name)

    async def _durable_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script whose write must survive a failover: with replicas to wait for, the
        scripts of this tick and one `WAIT` go down one connection (WAIT covers only its own
        connection's writes) and too few confirmations raise `ReplicaWaitTimeout`."""
        return await self._tick.script(name, keys, args, durable=True)

    def _wait(self, pipe: Any) -> None:
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)

    def _check_replicas(self, confirmed: Any, result: Any = None) -> None:
        check_replicas(confirmed, self.wait_replicas, self.wait_timeout_ms, result)


def flat(fields: Mapping[str, Any]) -> list[str]:
    """Job-record fields `{k: v, ...}` as `[k, str(v), ...]` (Lua ARGV), each value within the
    core's `FIELD_LIMITS`."""
    pairs: list[str] = []
    for key, value in fields.items():
        pairs += [key, bounded_field(key, value)]
    return pairs
