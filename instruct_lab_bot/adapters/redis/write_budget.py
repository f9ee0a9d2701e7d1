"""GitHub's write budget, shared by every bot process through Redis.

GitHub asks integrations to keep content-creating requests (POST/PATCH/PUT/DELETE) under about
80 a minute and punishes bursts with secondary rate limits. Every bot process counts its writes
in one Redis sorted set per installation (a sliding window, updated by one Lua script), so the
limit holds across replicas. Progress updates and replies to commands are *droppable*: they
only go out while a reserve is left, so check-run completions and result comments always find
room; replies also stay within a share of their own (`reply_share`), so a stranger flooding a
PR with commands cannot spend the budget either. A rate-limit answer from GitHub pauses every
process's writes for that installation until GitHub's stated time; a spent hourly quota marks
the installation (one key holding GitHub's reset, expiring then), and every process's reads
and writes for it wait for that time instead of asking GitHub.

`WriteBudget` is the Redis implementation of `core.write_gate.WriteGate`; the services hand
one to `build_github_app`.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.keys import (
    github_pause_key,
    github_quota_key,
    github_reply_writes_key,
    github_writes_key,
)
from instruct_lab_bot.adapters.redis.scripts import script
from instruct_lab_bot.core.write_gate import GateUnavailable, WriteClass

log = structlog.get_logger(__name__)


class WriteBudget:
    """At most `limit` writes per `window` seconds per installation, across every process.

    Progress and reply writes are granted only while more than `reserve` (a fraction of
    `limit`) is left, so final results never queue behind them; replies at most
    `reply_share` of `limit` per window.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        limit: int = 80,
        window: float = 60.0,
        reserve: float = 0.2,
        reply_share: float = 0.25,
    ) -> None:
        if limit < 1 or window <= 0 or not 0 <= reserve < 1 or not 0 < reply_share <= 1:
            raise ValueError(
                "need limit >= 1, window > 0, 0 <= reserve < 1 and 0 < reply_share <= 1"
            )
        self.limit = limit
        self.window = window
        self.droppable_limit = limit - math.ceil(limit * reserve)
        self.reply_limit = min(self.droppable_limit, max(1, int(limit * reply_share)))
        self._client = client
        self._take = script(client, "write_take")
        self._pause = script(client, "write_pause")

    async def try_take(self, installation_id: int, *, write_class: WriteClass) -> float:
        """0.0 if a write was granted (and counted), else seconds until one might be."""
        allowed = self.droppable_limit if write_class.droppable else self.limit
        member = f"{time.time():.6f}-{os.urandom(6).hex()}"
        keys = [github_writes_key(installation_id), github_pause_key(installation_id)]
        args: list[str | int] = [int(self.window * 1000), allowed, member]
        if write_class is WriteClass.REPLY:
            keys.append(github_reply_writes_key(installation_id))
            args.append(self.reply_limit)
        try:
            wait_ms = await self._take(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise GateUnavailable(repr(exc)) from exc
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

    async def spend_quota(self, installation_id: int, until: float) -> None:
        """Mark the installation's hourly quota spent until `until` (epoch seconds)."""
        ttl_ms = int((until - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        try:
            await self._client.set(github_quota_key(installation_id), f"{until:.3f}", px=ttl_ms)
        except (RedisError, OSError) as exc:
            log.warning("github.quota_not_shared", error=repr(exc))

    async def quota_spent_until(self, installation_id: int) -> float:
        """When the installation's spent quota comes back (epoch seconds); 0.0 if not spent."""
        try:
            value = await self._client.get(github_quota_key(installation_id))
        except (RedisError, OSError) as exc:
            log.warning("github.quota_unreadable", error=repr(exc))
            return 0.0
        try:
            return float(value) if value is not None else 0.0
        except (TypeError, ValueError):
            return 0.0
