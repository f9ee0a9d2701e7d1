"""Small markers with a lifetime: "done once" claims that guard side effects against
redelivery, and remembered results that spare repeating work."""

from __future__ import annotations

import secrets
from typing import cast

from instruct_lab_bot.adapters.redis.base import RedisPart
from instruct_lab_bot.adapters.redis.keys import DELIVERY_TTL, LINK_KEY, memo_key, once_key


class Markers(RedisPart):
    async def claim_once(self, marker: str, ttl: int = DELIVERY_TTL) -> bool:
        """True the first time `marker` is claimed: guards side effects against redelivery."""
        return bool(await self.redis.set(once_key(marker), "1", nx=True, ex=ttl))

    async def release_once(self, marker: str) -> None:
        await self.redis.delete(once_key(marker))

    def memo_key(self, name: str) -> str:
        return memo_key(name)

    async def recall(self, name: str) -> str | None:
        """What `remember(name, ...)` stored, unless it has expired."""
        return cast(str | None, await self.redis.get(memo_key(name)))

    async def remember(self, name: str, value: str, ttl: int) -> None:
        await self.redis.set(memo_key(name), value, ex=ttl)

    async def shared_link_key(self) -> bytes:
        """The artifact-link signing key all processes share when none is configured: 32
        random bytes, stored by whichever process asks first (SET NX), never expiring."""
        await self.redis.set(LINK_KEY, secrets.token_hex(32), nx=True)
        stored = cast(str | None, await self.redis.get(LINK_KEY))
        if not stored:
            raise RuntimeError(f"{LINK_KEY} vanished right after it was set")
        return bytes.fromhex(stored)
