"""The Redis a chaos run uses, and the fault each can suffer.

- `sentinel` (default): a primary, a replica and three Sentinels (`testkit.redis_topologies`);
  the fault kills the primary with `kill -9`, the Sentinels promote the replica, and the old
  primary comes back later as the new primary's replica. The bot runs with
  `ILAB_BOT_REDIS_WAIT_REPLICAS=1`, so what it acknowledged was on the replica too.
- `single`: one Redis with an append-only file fsynced on every write; the fault kills it
  with `kill -9` and starts it again on the same port from that file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..redis_server import RedisServer
from ..redis_topologies import SentinelTopology

REDIS_RESTART = "kill -9 redis + restart (AOF fsync always)"
REDIS_FAILOVER = "kill -9 redis primary, Sentinel failover"


class RedisBackend(Protocol):
    fault_kind: str
    settings: dict[str, str]  # ILAB_BOT_* (without the prefix) the bot needs for it

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    async def fault(self, down: float) -> None:
        """Fail, stay failed `down` seconds, recover."""
        ...


@dataclass
class SingleRedis:
    directory: Path
    fault_kind: str = REDIS_RESTART
    settings: dict[str, str] = field(default_factory=dict)
    server: RedisServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = RedisServer(self.directory, appendonly=True, appendfsync="always")

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    async def fault(self, down: float) -> None:
        self.server.kill()
        await asyncio.sleep(down)
        await asyncio.to_thread(self.server.start)


@dataclass
class SentinelRedis:
    directory: Path
    fault_kind: str = REDIS_FAILOVER
    settings: dict[str, str] = field(default_factory=lambda: {"REDIS_WAIT_REPLICAS": "1"})
    topology: SentinelTopology = field(init=False)

    def __post_init__(self) -> None:
        self.topology = SentinelTopology(self.directory)

    @property
    def url(self) -> str:
        return self.topology.url

    def start(self) -> None:
        self.topology.start()

    def stop(self) -> None:
        self.topology.stop()

    async def fault(self, down: float) -> None:
        old = self.topology.primary
        await asyncio.to_thread(self.topology.fail_over)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.topology.restart_old_primary, old)


def redis_backend(kind: str, directory: Path) -> RedisBackend:
    return SentinelRedis(directory) if kind == "sentinel" else SingleRedis(directory)
