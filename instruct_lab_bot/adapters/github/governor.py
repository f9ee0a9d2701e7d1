"""GitHub write budget shared through Redis.

GitHub asks integrations to keep content-creating requests (POST/PATCH/PUT/DELETE) under about
80 a minute and punishes bursts with secondary rate limits. Every bot process counts its writes
in one Redis sorted set per installation (a sliding window, updated by one Lua script), so the
limit holds across replicas. Progress updates are *droppable*: they only go out while a reserve
is left, so check-run completions and result comments always find room. A rate-limit answer
from GitHub pauses every process's writes for that installation until GitHub's stated time.

The retry decisions live in `rate_limits`.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.queue import github_pause_key, github_writes_key

log = structlog.get_logger(__name__)


# KEYS: the installation's write window (zset of grants scored by ms) and its pause key.
# ARGV: window ms, how many grants this class may see in the window, a unique member.
# Returns 0 when granted, else milliseconds until a retry could succeed. Time is Redis's own,
# so processes with skewed clocks still share one window.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local window = tonumber(ARGV[1])
local allowed = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < allowed then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  return 0
end
if allowed <= 0 then return window end
local oldest = redis.call('ZRANGE', KEYS[1], count - allowed, count - allowed, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# Extend the pause key to ARGV[1] ms unless it already lasts longer.
_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


class WriteBudget:
    """At most `limit` writes per `window` seconds per installation, across every process.

    Droppable writes are granted only while more than `reserve` (a fraction of `limit`) is
    left, so must-deliver writes never queue behind progress updates.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        limit: int = 80,
        window: float = 60.0,
        reserve: float = 0.2,
    ) -> None:
        if limit < 1 or window <= 0 or not 0 <= reserve < 1:
            raise ValueError("need limit >= 1, window > 0 and 0 <= reserve < 1")
        self.limit = limit
        self.window = window
        self.droppable_limit = limit - math.ceil(limit * reserve)
        self._take = client.register_script(_TAKE)
        self._pause = client.register_script(_PAUSE)

    async def try_take(self, installation_id: int, *, droppable: bool) -> float:
        """0.0 if a write was granted (and counted), else seconds until one might be."""
        allowed = self.droppable_limit if droppable else self.limit
        member = f"{time.time():.6f}-{os.urandom(6).hex()}"
        wait_ms = await self._take(
            keys=[github_writes_key(installation_id), github_pause_key(installation_id)],
            args=[int(self.window * 1000), allowed, member],
        )
        return int(cast(Any, wait_ms)) / 1000

    async def pause(self, installation_id: int, seconds: float) -> None:
        """Hold every process's writes for this installation (GitHub said to slow down)."""
        if seconds <= 0:
            return
        try:
            await self._pause(
                keys=[github_pause_key(installation_id)], args=[max(1, int(seconds * 1000))]
            )
        except (RedisError, OSError) as exc:
            log.warning("github.pause_not_shared", error=repr(exc))
