"""What every part of the queue shares: one client, how long job records live, and how a
write that must survive a failover waits for replicas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.scripts import script
from instruct_lab_bot.core.jobs import bounded_field

if TYPE_CHECKING:
    from instruct_lab_bot.adapters.redis.tick import TickBatch


class ReplicaWaitTimeout(RedisError):
    """Fewer replicas than `ILAB_BOT_REDIS_WAIT_REPLICAS` confirmed a write in time: it is on
    the primary, but a failover now could lose it (the caller answers 503 / retries).
    `result` is what the write returned on the primary."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


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


def check_replicas(confirmed: Any, wanted: int, timeout_ms: int, result: Any = None) -> None:
    """Raise unless `WAIT`'s reply `confirmed` counts `wanted` replicas (ReplicaWaitTimeout,
    carrying the write's `result`; WAIT's own error if it failed)."""
    if isinstance(confirmed, Exception):  # WAIT itself failed (a pipeline kept its error)
        raise confirmed
    if int(confirmed) < wanted:
        raise ReplicaWaitTimeout(
            f"{confirmed} of {wanted} replicas confirmed the write within {timeout_ms} ms",
            result,
        )


def flat(fields: Mapping[str, Any]) -> list[str]:
    """Job-record fields `{k: v, ...}` as `[k, str(v), ...]` (Lua ARGV), each value within the
    core's `FIELD_LIMITS`."""
    pairs: list[str] = []
    for key, value in fields.items():
        pairs += [key, bounded_field(key, value)]
    return pairs
