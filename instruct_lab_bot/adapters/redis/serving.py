"""The `local` serving backend's shared state: per PR model a desired record (written by the
server) and an actual one (written by the serve worker running it), the wake-up list a serve
worker blocks on, and a per-model owner lease so one worker runs each model."""

from __future__ import annotations

import redis.asyncio as aioredis

from instruct_lab_bot.adapters.redis.keys import PREFIX
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.serve_record import Actual, Desired, from_json, record_key, to_json

SERVE_DESIRED_KEY = PREFIX + "serve:desired"  # hash: owner/repo#n → Desired JSON
SERVE_ACTUAL_KEY = PREFIX + "serve:actual"  # hash: owner/repo#n → Actual JSON
SERVE_WAKE_KEY = PREFIX + "serve:wake"  # list: models a serve worker should look at now
SERVE_OWNER_PREFIX = PREFIX + "serve:owner:"  # + owner/repo#n → worker name (leased)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ServeRecords:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def desired(self, key: str) -> Desired | None:
        raw = await self.redis.hget(SERVE_DESIRED_KEY, key)  # type: ignore[misc]
        return from_json(Desired, raw) if raw is not None else None

    async def actual(self, key: str) -> Actual | None:
        raw = await self.redis.hget(SERVE_ACTUAL_KEY, key)  # type: ignore[misc]
        return from_json(Actual, raw) if raw is not None else None

    async def put_desired(self, record: Desired) -> None:
        await self.redis.hset(SERVE_DESIRED_KEY, record.key, to_json(record))  # type: ignore[misc]

    async def put_actual(self, key: str, record: Actual | None) -> None:
        if record is None:
            await self.redis.hdel(SERVE_ACTUAL_KEY, key)  # type: ignore[misc]
        else:
            await self.redis.hset(SERVE_ACTUAL_KEY, key, to_json(record))  # type: ignore[misc]

    async def delete(self, pull: PullRequestRef) -> bool:
        removed = await self.redis.hdel(SERVE_DESIRED_KEY, record_key(pull))  # type: ignore[misc]
        return bool(removed)

    async def everything(self) -> list[tuple[Desired, Actual | None]]:
        desired = await self.redis.hgetall(SERVE_DESIRED_KEY)  # type: ignore[misc]
        actual = await self.redis.hgetall(SERVE_ACTUAL_KEY)  # type: ignore[misc]
        found = []
        for key, raw in sorted(desired.items()):
            record = from_json(Desired, raw)
            if record is not None:
                report = actual.get(key)
                found.append((record, from_json(Actual, report) if report else None))
        return found

    async def wake(self, key: str) -> None:
        await self.redis.rpush(SERVE_WAKE_KEY, key)  # type: ignore[misc]

    async def next_wake(self, wait: float) -> str | None:
        """The next model key to look at, None after `wait` seconds with none."""
        found = await self.redis.blpop(  # type: ignore[misc]
            [SERVE_WAKE_KEY],
            timeout=wait,  # type: ignore[arg-type]
        )
        return _text(found[1]) if found is not None else None

    async def claim(self, key: str, worker: str, lease: float) -> bool:
        """True when `worker` owns the model (newly or already) for `lease` more seconds."""
        owner_key = SERVE_OWNER_PREFIX + key
        if await self.redis.set(owner_key, worker, nx=True, px=int(lease * 1000)):
            return True
        current = await self.redis.get(owner_key)
        if current is not None and _text(current) == worker:
            await self.redis.pexpire(owner_key, int(lease * 1000))
            return True
        return False

    async def owner(self, key: str) -> str | None:
        """The worker holding the model's lease, None when none does (or it died)."""
        current = await self.redis.get(SERVE_OWNER_PREFIX + key)
        return _text(current) if current is not None else None

    async def release(self, key: str, worker: str) -> None:
        owner_key = SERVE_OWNER_PREFIX + key
        current = await self.redis.get(owner_key)
        if current is not None and _text(current) == worker:
            await self.redis.delete(owner_key)
