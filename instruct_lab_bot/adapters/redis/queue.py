"""The queue: the one Redis object services hold, made of the parts beside it.

Two streams with consumer groups: `events` (verified webhook intents, written by the server,
read by dispatchers) and `jobs` (read by workers). Job state lives in one hash per job;
transitions run as Lua scripts (`lua/`). Key names are in `keys.py`.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from instruct_lab_bot.adapters.redis.connection import RedisTls, close, connect
from instruct_lab_bot.adapters.redis.dead_letters import DeadLetters
from instruct_lab_bot.adapters.redis.jobs import JobStore
from instruct_lab_bot.adapters.redis.keys import HISTORY_TTL
from instruct_lab_bot.adapters.redis.markers import Markers
from instruct_lab_bot.adapters.redis.outbox import Outbox
from instruct_lab_bot.adapters.redis.reply_limits import ReplyCounters
from instruct_lab_bot.adapters.redis.stats import QueueStats
from instruct_lab_bot.adapters.redis.streams import EventStream
from instruct_lab_bot.adapters.redis.tick import TickBatch
from instruct_lab_bot.adapters.redis.workers import WorkerRegistry
from instruct_lab_bot.core.settings import Settings


class Queue(
    EventStream, JobStore, DeadLetters, WorkerRegistry, Markers, QueueStats, ReplyCounters, Outbox
):
    """Thin async wrapper over one Redis connection pool."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        history_ttl: int = HISTORY_TTL,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        self.redis = client
        self.history_ttl = history_ttl
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = max(1, int(wait_timeout * 1000))
        self._event_batch = None
        self._tick = TickBatch(client, wait_replicas, self.wait_timeout_ms)

    @classmethod
    def from_url(
        cls, url: str, *, history_ttl: int = HISTORY_TTL, tls: RedisTls | None = None
    ) -> Queue:
        return cls(connect(url, tls), history_ttl=history_ttl)

    @classmethod
    def from_settings(cls, settings: Settings) -> Queue:
        """The queue every process opens: the settings' Redis, TLS files and replica wait."""
        tls = RedisTls(settings.redis_ca_file, settings.redis_cert_file, settings.redis_key_file)
        return cls(
            connect(settings.redis_url, tls),
            history_ttl=settings.job_history_ttl,
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout=settings.redis_wait_timeout,
        )

    async def aclose(self) -> None:
        await close(self.redis)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
