"""Chat records: which PR model is served for chat, with which credentials (`ChatRecord`).

The `serve` command writes one, `serve stop` deletes it, closing the PR marks it closed (its
links then answer 410 for `CHAT_CLOSED_TTL`); the chat proxy and page read it."""

from __future__ import annotations

import os
import time
from typing import Any, cast

import redis.asyncio as aioredis

from instruct_lab_bot.adapters.redis.keys import (
    CHAT_CLOSED_TTL,
    chat_key,
    chat_model_window_key,
    chat_user_window_key,
)
from instruct_lab_bot.adapters.redis.scripts import script
from instruct_lab_bot.core.chat_access import ChatRecord
from instruct_lab_bot.core.refs import PullRequestRef


class ChatRecords:
    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client

    async def put(self, record: ChatRecord) -> None:
        """Write every field (nothing of an older record survives) and keep it until removed."""
        key = chat_key(record.pull)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=cast(Any, record.to_fields()))
            pipe.persist(key)
            await pipe.execute()

    async def get(self, pull: PullRequestRef) -> ChatRecord | None:
        fields: dict[str, Any] = await cast(Any, self.redis).hgetall(chat_key(pull))
        if not fields or "nonce" not in fields:
            return None
        return ChatRecord.from_fields(fields)

    async def close(self, pull: PullRequestRef, now: float) -> ChatRecord | None:
        """Mark the PR's record closed (kept a while so its links answer 410)."""
        record = await self.get(pull)
        if record is None or record.closed:
            return record
        closed = record.closing(now)
        key = chat_key(pull)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, "closed_at", repr(closed.closed_at))
            pipe.expire(key, CHAT_CLOSED_TTL)
            await pipe.execute()
        return closed

    async def delete(self, pull: PullRequestRef) -> bool:
        return bool(await self.redis.delete(chat_key(pull)))

    async def take_request(
        self, user: str, pull: PullRequestRef, per_user: int, per_model: int, window: float
    ) -> tuple[str, float] | None:
        """Count one chat request in the person's and the model's sliding windows (shared by
        every replica); None when both had room, else (which one was full, seconds until it
        has room again). A refused request is not counted."""
        keys = [chat_user_window_key(user), chat_model_window_key(pull)]
        member = f"{time.time():.6f}-{os.urandom(6).hex()}"
        window_ms = int(window * 1000)
        verdict = await script(self.redis, "reply_take")(
            keys=keys, args=[window_ms, per_user, per_model, member]
        )
        if verdict == "ok":
            return None
        key = keys[0] if verdict == "user" else keys[1]
        oldest = await cast(Any, self.redis).zrange(key, 0, 0, withscores=True)
        now_ms = time.time() * 1000
        wait = (oldest[0][1] + window_ms - now_ms) / 1000 if oldest else window
        return ("user_rate" if verdict == "user" else "model_rate"), max(wait, 0.001)
