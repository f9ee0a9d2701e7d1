"""What every part of the queue shares: one client and how long job records live."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from instruct_lab_bot.adapters.redis.scripts import script
from instruct_lab_bot.core.jobs import bounded_field


class RedisPart:
    """Base of the `Queue`'s parts (mixins): each reads `redis` and `history_ttl`, which
    `Queue.__init__` sets once for all of them."""

    redis: aioredis.Redis
    history_ttl: int

    def _script(self, name: str) -> AsyncScript:
        return script(self.redis, name)


def flat(fields: Mapping[str, Any]) -> list[str]:
    """Job-record fields `{k: v, ...}` as `[k, str(v), ...]` (Lua ARGV), each value within the
    core's `FIELD_LIMITS`."""
    pairs: list[str] = []
    for key, value in fields.items():
        pairs += [key, bounded_field(key, value)]
    return pairs
