"""The queue: the one Redis object services hold, made of the parts beside it.

Two streams with consumer groups: `events` (verified webhook intents, written by the server,
read by dispatchers) and `jobs` (read by workers). Job state lives in one hash per job;
transitions run as Lua scripts (`lua/`). Key names are in `keys.py`.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from instruct_lab_bot.adapters.redis.dead_letters import DeadLetters
from instruct_lab_bot.adapters.redis.jobs import JobStore
from instruct_lab_bot.adapters.redis.keys import HISTORY_TTL
from instruct_lab_bot.adapters.redis.markers import Markers
from instruct_lab_bot.adapters.redis.outbox import Outbox
from instruct_lab_bot.adapters.redis.reply_limits import ReplyCounters
from instruct_lab_bot.adapters.redis.stats import QueueStats
from instruct_lab_bot.adapters.redis.streams import EventStream
from instruct_lab_bot.adapters.redis.workers import WorkerRegistry


def connect(url: str) -> aioredis.Redis:
    """A client with the bot's timeouts: a dead Redis fails calls instead of hanging them."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return client


class Queue(
    EventStream, JobStore, DeadLetters, WorkerRegistry, Markers, QueueStats, ReplyCounters, Outbox
):
    """Thin async wrapper over one Redis connection pool."""

    def __init__(self, client: aioredis.Redis, *, history_ttl: int = HISTORY_TTL) -> None:
        self.redis = client
        self.history_ttl = history_ttl
        self._event_batch = None

    @classmethod
    def from_url(cls, url: str, *, history_ttl: int = HISTORY_TTL) -> Queue:
        return cls(connect(url), history_ttl=history_ttl)

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
