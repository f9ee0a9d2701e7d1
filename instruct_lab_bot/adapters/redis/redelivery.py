"""The reconciler's shared state: a short lock so one replica at a time lists deliveries, and
a per-GUID mark so each failed delivery is redelivered once, however many passes overlap."""

from __future__ import annotations

import contextlib
import os

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.redis.keys import (
    RECONCILER_LOCK,
    REDELIVERY_MARK_TTL,
    delivery_key,
    redelivered_key,
)
from instruct_lab_bot.adapters.redis.scripts import script


class RedeliveryLedger:
    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._release = script(client, "release_lock")

    async def lock(self, ttl: float) -> str | None:
        """Take the reconciler lock for `ttl` seconds: an owner token to `unlock` with, or
        None if another replica holds it."""
        owner = os.urandom(8).hex()
        locked = await self.redis.set(RECONCILER_LOCK, owner, nx=True, px=max(1, int(ttl * 1000)))
        return owner if locked else None

    async def unlock(self, owner: str) -> None:
        """Release the lock if it is still ours; a failure only lets it expire on its own."""
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[RECONCILER_LOCK], args=[owner])

    async def stored(self, guid: str) -> bool:
        """Whether the server stored this delivery (only its answer to GitHub was lost)."""
        return bool(await self.redis.exists(delivery_key(guid)))

    async def claim(self, guid: str, delivery_id: int, ttl: float) -> bool:
        """Claim one GUID's redelivery for `ttl` seconds; False if it is claimed or done."""
        mark = redelivered_key(guid)
        return bool(await self.redis.set(mark, str(delivery_id), nx=True, ex=max(1, int(ttl))))

    async def release(self, guid: str) -> None:
        """Give a claim back: the next pass tries this delivery again."""
        await self.redis.delete(redelivered_key(guid))

    async def settle(self, guid: str) -> None:
        """Keep the mark past GitHub's redelivery window: never redeliver this GUID again."""
        await self.redis.expire(redelivered_key(guid), REDELIVERY_MARK_TTL)
